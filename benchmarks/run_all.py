"""Every comparison in one run: one summary table and chart.

    python benchmarks/run_all.py [--quick] [--slices 136] [--demo] [--out-dir results/benchmarks]

Runs, in this order, each benchmark module's `run` (see each file's docstring):
bench_metrics (liverseg's challenge metrics against the fastest of MONAI and
medpy + surface-distance), bench_inference (predict_volume against MONAI's
sliding_window_inference: speed and peak memory; `--slices` of the 512 x 512 volume),
bench_postprocess (against scipy.ndimage), bench_patches (making training patches from
ATLAS-size subjects, in the queue's workers and in its main process, against TorchIO's own
pipeline), bench_data_pipeline (patches per second of one worker against the training
step rate). `--quick` makes each small.

The workflow itself: with `--demo`, the whole demo DAG (`snakemake --cores 2 --configfile
config/demo.yaml`) runs in a temporary copy of the workflow (tens of minutes on 2 cores)
and its wall time is a row; without it, the benchmark files of an earlier run under
results/benchmarks/rules, if any, are summed into a row. Either way the per-rule cost table
is written next to the summary (rule_costs.tsv, rule_costs.md), and the training table
(training.tsv, training.md), whose share of the training loops' time spent waiting for
data is a row.

Writes OUT_DIR/summary.tsv, summary.md and summary.png (the ratios, log scale), and each
benchmark's own TSV. Exits 1 when any comparison's outputs disagree.
"""

from __future__ import annotations

import argparse
import importlib
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import OUT_DIR, ROOT, SUMMARY_COLUMNS, exit_status, summary_row

from liverseg import io, tables
from liverseg.workflow import run_costs

BENCHMARKS = (
    "bench_metrics",
    "bench_inference",
    "bench_postprocess",
    "bench_patches",
    "bench_data_pipeline",
)
WORKFLOW_FILES = (
    "Snakefile",
    "workflow",
    "config",
    "envs",
)  # what `snakemake` reads; the library is installed


def run_demo(out_dir: Path) -> list[dict]:
    """The whole demo DAG in a temporary copy of the workflow: its wall time, and its rules' costs."""
    with tempfile.TemporaryDirectory(prefix="liverseg_demo.") as tmp:
        for name in WORKFLOW_FILES:
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
            copy(ROOT / name, Path(tmp) / name)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/demo.yaml"],
            cwd=tmp,
            check=True,
        )
        return workflow_rows(Path(tmp) / "results", out_dir, time.perf_counter() - start)


def earlier_run(results: Path, out_dir: Path) -> list[dict]:
    """The jobs of an earlier workflow run, from its benchmark files (none: no row)."""
    return workflow_rows(results, out_dir) if (results / run_costs.RULES_DIR).is_dir() else []


def workflow_rows(results: Path, out_dir: Path, wall_s: float | None = None) -> list[dict]:
    """A run's wall time (without `wall_s`, its jobs' summed) and its training loops' share
    of time waiting for data; its rule-cost and training tables written to OUT_DIR."""
    total = run_costs.write_rule_costs(results, out_dir / "rule_costs").iloc[-1]
    what = (
        f"{total.jobs} jobs of {results} (wall time summed over jobs)"
        if wall_s is None
        else f"the demo DAG on 2 cores, {total.jobs} jobs (wall time)"
    )
    rows = [summary_row("workflow", what, total.wall_s if wall_s is None else wall_s, None, "", None, "s")]
    training = run_costs.write_training(results, out_dir / "training")
    if not training.empty and math.isfinite(training.wait_share.iloc[-1]):
        rows.append(
            summary_row(
                "training data wait",
                f"share of its {training.folds.iloc[-1]} training runs' loop time spent waiting for data",
                training.wait_share.iloc[-1],
                None,
                "",
                None,
                "fraction",
            )
        )
    return rows


def display(summary: pd.DataFrame) -> pd.DataFrame:
    """Figures with three significant digits, blanks for what does not apply."""
    shown = summary.astype(object)
    for column in ("liverseg", "peer", "ratio"):
        shown[column] = [f"{v:.3g}" if isinstance(v, float) and math.isfinite(v) else "" for v in summary[column]]
    shown["outputs_agree"] = ["" if pd.isna(v) else ("yes" if v else "NO") for v in summary.outputs_agree]
    return shown


def ratio_chart(summary: pd.DataFrame, path: Path) -> None:
    from liverseg.figures import plt, save

    shown = summary.dropna(subset=["ratio"])
    labels = [f"{b}\n(vs {p})" for b, p in zip(shown.benchmark, shown.peer_name)]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(shown) + 1.2))
    colours = ["tab:green" if r >= 1 else "tab:red" for r in shown.ratio]
    rows = range(len(shown))  # positions, not labels: two rows may share a label
    ax.barh(rows, shown.ratio - 1, left=1, color=colours)  # from 1 (a tie) out to the ratio, either side
    ax.set_yticks(rows, labels)
    ax.axvline(1, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(min(shown.ratio.min(), 1) / 2, max(shown.ratio.max(), 1) * 3)
    ax.invert_yaxis()
    for y, r in enumerate(shown.ratio):
        ax.text(r, y, f" {r:.3g}×", va="center", ha="left" if r >= 1 else "right", fontsize=8)
    ax.set_xlabel("ratio (> 1: liverseg faster / leaner; data pipeline: patches made / consumed)")
    ax.set_title("liverseg against its peers", fontsize=10)
    save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: minutes instead of half an hour")
    parser.add_argument("--slices", type=int, default=100, help="slices of the inference volume (ATLAS: 44-136)")
    parser.add_argument("--demo", action="store_true", help="also run the whole demo DAG (tens of minutes)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    rows = []
    for name in BENCHMARKS:  # imported here: the inference benchmark's fresh processes re-run this file's top
        bench = importlib.import_module(name)
        options = ["--out", str(args.out_dir / f"{name.removeprefix('bench_')}.tsv")] + ["--quick"] * args.quick
        options += ["--slices", str(args.slices)] if name == "bench_inference" else []
        print(f"\n== {name} {' '.join(options)}", flush=True)
        rows += bench.run(bench.build_parser().parse_args(options))
    rows += run_demo(args.out_dir) if args.demo else earlier_run(Path("results"), args.out_dir)

    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    io.write_tsv(args.out_dir / "summary.tsv", summary)
    caption = "liverseg against its peers; ratio > 1: liverseg's side is better (see docs/performance.md)"
    io.write_text(args.out_dir / "summary.md", tables.to_markdown(display(summary), caption))
    ratio_chart(summary, args.out_dir / "summary.png")
    print("\n" + display(summary).to_string(index=False))
    print(f"wrote {args.out_dir}/summary.tsv, summary.md, summary.png")
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
