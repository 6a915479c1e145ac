"""The paper's tables, built from the workflow's outputs and written as TSV, Markdown, LaTeX.

Every table is a DataFrame with two-level column labels (a group, such as a pipeline or
a split, over its sub-columns; label columns have an empty sub-level) and string cells,
rounded for reading. Its TSV holds the numbers behind it at full precision instead (for
Table 2 table2_values, for Table 3 stats.compare_pipelines' frame): a TSV is for
machines, only Markdown and LaTeX round. The best cell of a Table 2 row ends with
BEST_MARK (" *"), which Markdown and LaTeX render bold.

Table 2 conventions (the paper leaves them open): cells are mean ± sample standard
deviation (ddof=1) over subjects, NaNs (distances to an empty mask) left out and counted,
e.g. "0.57 ± 0.28 (2 NaN)"; values are shown in the paper's scales (HD and tumour ASD
divided by 10, the burden multiplied by 100). The RMSE row shows the mean ± std of the
per-subject absolute burden error, as the paper printed, followed by the cohort RMSE,
the challenge's score, which also decides that row's best cell. Best means highest mean
for ↑ rows and lowest for ↓ rows, compared as displayed (ties all marked).

LaTeX output needs the booktabs and amssymb packages. Markdown is rendered here (no
tabulate dependency), pipes escaped, captions as a pandoc "Table:" line.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import io
from .cohort import PHASES
from .errors import InputError
from .metrics import CHALLENGE_METRICS, burden_rmse

BEST_MARK = " *"
SPLITS = {"train": "Training", "validation": "Validation", "test": "Test"}
PIPELINE_LABELS = {
    "multiclass": "Multi-class AHNet",
    "dual_binary": "Dual binary AHNet",
    "dynunet": "DynUNet",
}
STAGE_LABELS = {"postprocessed": "✓", "raw": "×"}
# (region, metric) -> (factor applied to the values, label of the scale as the paper prints it)
SCALES = {
    ("Liver", "HD"): (0.1, "×10¹"),
    ("Tumor", "ASD"): (0.1, "×10¹"),
    ("Tumor", "HD"): (0.1, "×10¹"),
    ("Tumor", "RMSE"): (100.0, "×10⁻²"),
}
FORMATS = ("tsv", "md", "tex")


# ------------------------------------------------------------------------------ Table 1


def table1(folds: Mapping, phases: Mapping[str, str]) -> pd.DataFrame:
    """Subjects per fold, split and phase (paper Table 1).

    `folds` is folds.json's content ({"folds": [{"fold", "train", "validation", "test"}]});
    `phases` maps each subject to its phase code (A, D, NC, P, U).
    """
    fold_list = folds.get("folds") if isinstance(folds, Mapping) else None
    if not fold_list:
        raise InputError("folds: no 'folds' list")
    counts, sizes = [], {split: set() for split in SPLITS}
    for fold in fold_list:
        row = {("Fold", ""): fold.get("fold")}
        for split, title in SPLITS.items():
            if split not in fold:
                raise InputError(f"folds: fold {fold.get('fold')} has no '{split}' list")
            unknown = [s for s in fold[split] if s not in phases]
            if unknown:
                raise InputError(f"folds: fold {fold.get('fold')} {split}: subjects without a phase: {unknown}")
            bad = sorted({phases[s] for s in fold[split]} - set(PHASES))
            if bad:
                raise InputError(f"phases: unknown phase codes {bad} (expected {', '.join(PHASES)})")
            split_phases = [phases[s] for s in fold[split]]
            row.update({(title, p): split_phases.count(p) for p in PHASES})
            sizes[split].add(len(split_phases))
        counts.append(row)
    frame = pd.DataFrame(counts)
    # "Training (N=40)" as in the paper when every fold has the same split sizes
    titles = {t: f"{t} (N={next(iter(sizes[s]))})" if len(sizes[s]) == 1 else t for s, t in SPLITS.items()}
    frame.columns = pd.MultiIndex.from_tuples([(titles.get(g, g), p) for g, p in frame.columns])
    return frame


# ------------------------------------------------------------------------------ Table 2


def table2_values(metrics: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """The numbers behind Table 2, unscaled: one row per (pipeline, stage, score).

    Columns: pipeline, stage, region, metric, column, higher_is_better, mean, std, n,
    n_nan, rmse (cohort RMSE, burden row only; NaN elsewhere), scale.
    """
    rows = []
    for (pipeline, stage), frame in _ordered(metrics):
        missing = [m.column for m in CHALLENGE_METRICS if m.column not in frame.columns]
        if missing:
            raise InputError(f"metrics of {pipeline}/{stage}: missing columns {missing}")
        for m in CHALLENGE_METRICS:
            values = pd.to_numeric(frame[m.column], errors="coerce").to_numpy(float)
            present = values[~np.isnan(values)]
            rows.append(
                dict(
                    pipeline=pipeline,
                    stage=stage,
                    region=m.region,
                    metric=m.name,
                    column=m.column,
                    higher_is_better=m.higher_is_better,
                    mean=float(present.mean()) if present.size else math.nan,
                    std=float(present.std(ddof=1)) if present.size > 1 else math.nan,
                    n=int(present.size),
                    n_nan=int(values.size - present.size),
                    rmse=burden_rmse(present) if m.name == "RMSE" else math.nan,
                    scale=SCALES.get((m.region, m.name), (1.0, ""))[0],
                )
            )
    return pd.DataFrame(rows)


def table2(metrics: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Paper Table 2 from per-subject metric tables keyed by (pipeline, stage).

    Columns: Region, Metric, then one per (pipeline, stage): the pipeline's name over ✓
    (post-processed) or × (raw).
    """
    values = table2_values(metrics)
    keys = list(dict.fromkeys(zip(values.pipeline, values.stage)))
    header = {k: (PIPELINE_LABELS.get(k[0], k[0]), STAGE_LABELS.get(k[1], k[1])) for k in keys}
    columns: dict[tuple[str, str], list[str]] = {
        ("Region", ""): [m.region for m in CHALLENGE_METRICS],
        ("Metric", ""): [_row_label(m) for m in CHALLENGE_METRICS],
    }
    columns.update({header[k]: [] for k in keys})
    for m in CHALLENGE_METRICS:
        cells = values[(values.region == m.region) & (values.metric == m.name)].set_index(["pipeline", "stage"])
        shown = {k: _shown(_score(cells.loc[k]) * cells.loc[k, "scale"]) for k in keys}
        finite = [v for v in shown.values() if not math.isnan(v)]
        best = (max if m.higher_is_better else min)(finite) if finite else math.nan
        for k in keys:
            columns[header[k]].append(_cell(cells.loc[k]) + (BEST_MARK if shown[k] == best else ""))
    return pd.DataFrame(columns)


def _ordered(metrics: Mapping[tuple[str, str], pd.DataFrame]) -> list:
    """Pipelines and stages in the paper's order; unknown names after, as given."""
    if not metrics:
        raise InputError("table 2: no metric tables given")

    def rank(key):
        pipeline, stage = key
        return (
            list(PIPELINE_LABELS).index(pipeline) if pipeline in PIPELINE_LABELS else len(PIPELINE_LABELS),
            list(STAGE_LABELS).index(stage) if stage in STAGE_LABELS else len(STAGE_LABELS),
        )

    return sorted(metrics.items(), key=lambda item: rank(item[0]))


def _row_label(m) -> str:
    scale = SCALES.get((m.region, m.name), (1.0, ""))[1]
    arrow = "↑" if m.higher_is_better else "↓"
    return f"{m.name} ({scale}) {arrow}" if scale else f"{m.name} {arrow}"


def _score(cell: pd.Series) -> float:
    """The value that ranks a cell: the cohort RMSE on the burden row, else the mean."""
    return cell["rmse"] if cell["metric"] == "RMSE" else cell["mean"]


def _shown(x: float) -> float:
    return round(x, 2) if not math.isnan(x) else math.nan


def _cell(cell: pd.Series) -> str:
    s = cell["scale"]
    if cell["n"] == 0:
        text = "–"
    else:
        text = f"{cell['mean'] * s:.2f} ± {cell['std'] * s:.2f}"
        if cell["metric"] == "RMSE":
            text += f" (RMSE {cell['rmse'] * s:.2f})"
    if cell["n_nan"]:
        text += f" ({cell['n_nan']} NaN)"
    return text


# ------------------------------------------------------------------------------ Table 3


def table3(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Paper Table 3 from stats.compare_pipelines' frame, with Holm-adjusted p-values."""
    needed = [
        "region",
        "metric",
        "direction",
        "shapiro_p",
        "hypothesis",
        "test",
        "p_value",
        "significant",
        "p_holm",
        "n",
    ]
    missing = [c for c in needed if c not in tests.columns]
    if missing:
        raise InputError(f"table 3: missing columns {missing}")
    out = pd.DataFrame(
        {
            ("Region", ""): tests.region,
            ("Metric", ""): tests.metric + " " + tests.direction,
            ("Shapiro p-value", ""): tests.shapiro_p.map(_p),
            ("Hypothesis", ""): tests.hypothesis,
            ("Test", ""): tests.test,
            ("p-value", ""): tests.p_value.map(_p),
            (f"Significance (p < {alpha:g})", ""): np.where(tests.significant, "✓", "×"),
            ("Holm p-value", ""): tests.p_holm.map(_p),
            ("n", ""): tests.n.astype(int).astype(str),
        }
    ).reset_index(drop=True)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def _p(p: float) -> str:
    return "–" if p is None or math.isnan(p) else f"{p:.1e}"


# ------------------------------------------------------------------- Dice by contrast phase


def dice_by_phase(
    metrics: Mapping[tuple[str, str], pd.DataFrame], phases: Mapping[str, Mapping[str, str]]
) -> pd.DataFrame:
    """Mean liver and tumour Dice per contrast phase: one row per (set, phase) with its
    subject count, and an "all" row per set; two columns per pipeline.

    `metrics` maps (set, pipeline) to a per-subject metrics frame (subject, liver_dice,
    tumor_dice; a held-out frame's `model` column selects its "ensemble" rows);
    `phases[set]` maps that set's subjects to phase codes (a set of its own, as held-out
    images may reuse the training images' names). Why: the phases differ in what the
    tumours look like (bright in the arterial phase, washed out later), and one mean
    over all of them hides a phase the models miss.
    """
    table: dict[tuple[str, str], dict] = {}
    for (split, pipeline), frame in metrics.items():
        if "model" in frame.columns:
            frame = frame[frame["model"] == "ensemble"]
        missing = sorted(set(frame["subject"]) - set(phases[split]))
        if missing:
            raise InputError(f"{split} {pipeline}: subjects without a contrast phase: {missing}")
        phase = frame["subject"].map(phases[split])
        label = PIPELINE_LABELS.get(pipeline, pipeline)
        for code, group in [(p, frame[phase == p]) for p in PHASES] + [("all", frame)]:
            if len(group):
                row = table.setdefault((split, code), {"set": split, "phase": code, "subjects": len(group)})
                row[f"{label} liver Dice"] = group["liver_dice"].mean()
                row[f"{label} tumour Dice"] = group["tumor_dice"].mean()
    return pd.DataFrame(list(table.values()))


# ------------------------------------------------------------------------------ writing


def write_table_files(
    frame: pd.DataFrame,
    stem: str | os.PathLike,
    formats: Sequence[str] = FORMATS,
    caption: str | None = None,
    values: pd.DataFrame | None = None,
) -> list[Path]:
    """Write `frame` as stem.tsv / stem.md / stem.tex (each atomically); return the paths.

    `values`: the numbers behind a rounded `frame`, at full precision, written as the TSV
    in its place (Markdown and LaTeX still show `frame`).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(f"table formats {unknown} unknown (choose from {', '.join(FORMATS)})")
    stem = Path(stem)
    written = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        if fmt == "tsv":
            flat = (frame if values is None else values).copy()
            flat.columns = _flat_names(flat)
            io.write_tsv(path, flat)
        else:
            io.write_text(path, to_markdown(frame, caption) if fmt == "md" else to_latex(frame, caption))
        written.append(path)
    return written


def to_markdown(frame: pd.DataFrame, caption: str | None = None) -> str:
    """A pipe table; two-level headers flattened ("Training (N=40) A"), best cells bold."""

    def cell(value) -> str:
        text = _text(value).replace("|", "\\|")
        return f"**{text[: -len(BEST_MARK)]}**" if text.endswith(BEST_MARK) else text

    header = [name.replace("|", "\\|") for name in _flat_names(frame)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    if caption:
        lines += ["", f": {caption}"]  # pandoc caption syntax
    return "\n".join(lines) + "\n"


def to_latex(frame: pd.DataFrame, caption: str | None = None) -> str:
    """A booktabs tabular in a table float; groups of columns under \\multicolumn headers."""
    top, sub = _levels(frame)
    n_label = next((i for i, s in enumerate(sub) if s != ""), len(sub))  # label columns: no sub-level
    lines = ["\\begin{table}[ht]", "\\centering"]
    if caption:
        lines.append(f"\\caption{{{_tex(caption)}}}")
    lines += [f"\\begin{{tabular}}{{{'l' * n_label}{'c' * (len(sub) - n_label)}}}", "\\toprule"]
    if any(sub):
        groups, rules, col = [], [], 0
        for name, width in _runs(top):
            if col < n_label:
                groups += [""] * width
            else:
                groups.append(f"\\multicolumn{{{width}}}{{c}}{{{_tex(name)}}}" if width > 1 else _tex(name))
                rules.append(f"\\cmidrule(lr){{{col + 1}-{col + width}}}")
            col += width
        lines.append(" & ".join(groups) + " \\\\")
        lines.append(" ".join(rules))
        lines.append(" & ".join(_tex(s if i >= n_label else t) for i, (t, s) in enumerate(zip(top, sub))) + " \\\\")
    else:
        lines.append(" & ".join(_tex(t) for t in top) + " \\\\")
    lines.append("\\midrule")
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            text = _text(value)
            bold = text.endswith(BEST_MARK)
            text = _tex(text[: -len(BEST_MARK)] if bold else text)
            cells.append(f"\\textbf{{{text}}}" if bold else text)
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _levels(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    if isinstance(frame.columns, pd.MultiIndex):
        return [str(c[0]) for c in frame.columns], [str(c[1]) if len(c) > 1 else "" for c in frame.columns]
    return [str(c) for c in frame.columns], ["" for _ in frame.columns]


def _flat_names(frame: pd.DataFrame) -> list[str]:
    return [" ".join(p for p in (t, s) if p) for t, s in zip(*_levels(frame))]


def _runs(names: list[str]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return runs


def _text(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return str(value)


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_TEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip
_TEX_SYMBOLS = {
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "✓": r"\checkmark",
    "×": r"$\times$",
    "–": "--",
}


def _tex(text: str) -> str:
    """Escape LaTeX specials; the tables' Unicode symbols and ×10ⁿ scales become math."""
    text = "".join(_TEX_SPECIALS.get(ch, ch) for ch in text)
    text = re.sub(
        r"×10([⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+)",
        lambda m: f"$\\times10^{{{m.group(1).translate(_SUPERSCRIPTS)}}}$",
        text,
    )
    return "".join(_TEX_SYMBOLS.get(ch, ch) for ch in text)
