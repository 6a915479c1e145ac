"""What a workflow run cost: Snakemake's benchmark files summed per rule.

Every rule that does work (all but `all`) has a `benchmark:` directive writing
`results/benchmarks/rules/<rule>.tsv` or `results/benchmarks/rules/<rule>/<wildcards>.tsv`: one row per run of the job
(several with Snakemake's `repeat`), columns s (wall seconds), h:m:s, max_rss, max_vms, max_uss,
max_pss (MiB, which Snakemake labels MB), io_in, io_out, mean_load and cpu_time
(seconds); "NA" where the job ended before the first memory sample, "-" where a value
was not measured. A job counts once (the mean of its repeats; the peak of their
max_rss). The rule-cost table sums per rule: jobs, wall time, CPU time, and the largest
max_rss of any of its jobs. Wall times are summed over jobs, so with several cores a
rule's total exceeds the time it took the workflow.

The training table tells, per model, where the training loops' time went, from each
fold's history.tsv: the seconds spent waiting for batches and the seconds spent in
optimiser steps. Their ratio, the wait share, is the share of the time the GPU sat idle
for want of patches, the figure that says whether the queue's workers keep up.

This runs outside the DAG (`liverseg costs`): a final rule could not see its own
benchmark, and would have to wait for every other job's file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .. import tables
from ..errors import InputError

RULES_DIR = Path("benchmarks") / "rules"
HISTORIES = "models/*/fold*/history.tsv"
TRAINING_COLUMNS = ["model", "folds", "epochs", "data_s", "step_s", "wait_share"]
JOB_COLUMNS = ["rule", "job", "wall_s", "cpu_s", "max_rss_mib"]
NEEDED = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "max_rss_mib"}


def read_benchmarks(results_dir: str | os.PathLike = "results") -> pd.DataFrame:
    """One row per job's benchmark file under RESULTS_DIR/benchmarks/rules: its rule (the
    first folder, or the file's name), the job (the path below), wall_s, cpu_s and
    max_rss_mib."""
    root = Path(results_dir) / RULES_DIR
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        runs = _read_tsv(path, "a Snakemake benchmark file", na_values=["NA", "-"])
        missing = sorted(set(NEEDED) - set(runs.columns))
        if missing or runs.empty:
            raise InputError(f"{path}: not a Snakemake benchmark file (no rows, or no column {missing})")
        name = path.relative_to(root).with_suffix("").as_posix()
        runs = runs[list(NEEDED)].apply(pd.to_numeric, errors="coerce").rename(columns=NEEDED)
        rows.append(
            dict(
                rule=name.split("/")[0],
                job=name,
                wall_s=runs.wall_s.mean(),
                cpu_s=runs.cpu_s.mean(),
                max_rss_mib=runs.max_rss_mib.max(),
            )
        )
    if not rows:
        raise InputError(f"{root}: no benchmark files (run the workflow first)")
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def rule_costs(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule, most wall time first, then a `total` row: jobs, wall_s, wall_share,
    cpu_s, peak_rss_mib (NaN where no job of the rule has a memory sample)."""
    rules = jobs.groupby("rule").agg(
        jobs=("job", "size"),
        wall_s=("wall_s", "sum"),
        cpu_s=("cpu_s", "sum"),
        peak_rss_mib=("max_rss_mib", "max"),
    )
    rules = rules.sort_values("wall_s", ascending=False, kind="stable")
    rules.loc["total"] = [
        rules.jobs.sum(),
        rules.wall_s.sum(),
        rules.cpu_s.sum(),
        rules.peak_rss_mib.max(),
    ]
    rules.insert(
        2,
        "wall_share",
        rules.wall_s / rules.wall_s["total"] if rules.wall_s["total"] else float("nan"),
    )
    rules["jobs"] = rules.jobs.astype(int)
    return rules.round({"wall_s": 2, "wall_share": 3, "cpu_s": 2, "peak_rss_mib": 1}).reset_index()


def write_rule_costs(
    results_dir: str | os.PathLike = "results", out_stem: str | os.PathLike | None = None
) -> pd.DataFrame:
    """The rule-cost table of a run, written as OUT_STEM.tsv and OUT_STEM.md (default
    RESULTS_DIR/benchmarks/rule_costs)."""
    table = rule_costs(read_benchmarks(results_dir))
    _write(
        table,
        out_stem or Path(results_dir) / "benchmarks" / "rule_costs",
        "Cost per workflow rule: jobs, wall and CPU seconds summed over jobs, share of all jobs' wall time, "
        "largest max_rss of a job (MiB), from Snakemake's benchmark files",
    )
    return table


def training_table(results_dir: str | os.PathLike = "results") -> pd.DataFrame:
    """Per model (every RESULTS_DIR/models/<model>/fold<k>/history.tsv), then a `total`
    row: folds, epochs, data_s (seconds waiting for batches), step_s (seconds in optimiser
    steps) and wait_share = data_s / (data_s + step_s). NaN for the seconds of histories
    written before liverseg recorded them. No rows where nothing was trained."""
    rows = []
    for path in sorted(Path(results_dir).glob(HISTORIES)):
        history = _read_tsv(path, "a training history")
        if "epoch" not in history.columns:
            raise InputError(f"{path}: not a training history (no epoch column)")
        seconds = {
            column: pd.to_numeric(history[column], errors="coerce").sum() if column in history.columns else float("nan")
            for column in ("data_seconds", "step_seconds")
        }
        rows.append(
            dict(
                model=path.parent.parent.name,
                epochs=len(history),
                data_s=seconds["data_seconds"],
                step_s=seconds["step_seconds"],
            )
        )
    if not rows:
        return pd.DataFrame(columns=TRAINING_COLUMNS)
    runs = pd.DataFrame(rows)
    models = runs.groupby("model").agg(
        folds=("model", "size"),
        epochs=("epochs", "sum"),
        data_s=("data_s", lambda v: v.sum(min_count=len(v))),
        step_s=("step_s", lambda v: v.sum(min_count=len(v))),
    )
    models.loc["total"] = [
        models.folds.sum(),
        models.epochs.sum(),
        models.data_s.sum(min_count=len(models)),
        models.step_s.sum(min_count=len(models)),
    ]
    models["wait_share"] = models.data_s / (models.data_s + models.step_s)
    models[["folds", "epochs"]] = models[["folds", "epochs"]].astype(int)
    return models.round({"data_s": 2, "step_s": 2, "wait_share": 3}).reset_index()[TRAINING_COLUMNS]


def write_training(
    results_dir: str | os.PathLike = "results", out_stem: str | os.PathLike | None = None
) -> pd.DataFrame:
    """The training table of a run, written as OUT_STEM.tsv and OUT_STEM.md (default
    RESULTS_DIR/benchmarks/training) when anything was trained."""
    table = training_table(results_dir)
    if not table.empty:
        _write(
            table,
            out_stem or Path(results_dir) / "benchmarks" / "training",
            "Training loops per model: folds, epochs, seconds waiting for batches (data_s) and in optimiser "
            "steps (step_s), and the share of the two spent waiting (wait_share)",
        )
    return table


def _write(table: pd.DataFrame, stem: str | os.PathLike, caption: str) -> None:
    tables.write_table_files(table, Path(stem), formats=("tsv", "md"), caption=caption)


def _read_tsv(path: Path, what: str, **options) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read {what} ({exc})") from exc
