"""Paired significance tests between two pipelines (the paper's Table 3).

For each of the nine challenge scores, over the subjects both pipelines were evaluated
on: Shapiro–Wilk on the paired differences; if normal (p >= alpha) a one-sided paired
t-test, else a one-sided Wilcoxon signed-rank test. The one-sided hypothesis favours the
pipeline with the better mean ("B > M" for a score where higher is better, "B < M" where
lower is better; with equal means the second pipeline is written first). The burden row
tests the per-subject absolute burden error. Holm's correction over the nine p-values is
reported beside the raw ones (the paper reports raw p-values).

Degenerate rows never raise: with fewer than 3 pairs, or all differences zero, the
p-values are NaN and the test column says why. Constant non-zero differences have no
Shapiro p-value (NaN) and go to the Wilcoxon test.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .errors import InputError
from .metrics import CHALLENGE_METRICS

T_TEST, WILCOXON = "t-test", "Wilcoxon"
TOO_FEW, NO_DIFFERENCE = "none (fewer than 3 pairs)", "none (all differences zero)"
COLUMNS = [
    "region", "metric", "direction", "shapiro_p", "hypothesis", "test",
    "p_value", "significant", "p_holm", "n", "n_dropped",
]  # fmt: skip


def compare_pipelines(
    first: pd.DataFrame,
    second: pd.DataFrame,
    first_label: str = "M",
    second_label: str = "B",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per challenge score (CHALLENGE_METRICS order), columns COLUMNS.

    `first` and `second` are per-subject metric tables (evaluate's output) with the same
    subjects. `n` counts the pairs tested, `n_dropped` the subjects left out of that score
    because either pipeline has NaN there (e.g. a distance to an empty mask).
    """
    paired = _paired(first, second, first_label, second_label)
    rows = []
    for metric in CHALLENGE_METRICS:
        a, b = (
            paired[f"{metric.column}_1"].to_numpy(float),
            paired[f"{metric.column}_2"].to_numpy(float),
        )
        keep = ~(np.isnan(a) | np.isnan(b))
        row = dict(
            region=metric.region,
            metric=metric.name,
            direction="↑" if metric.higher_is_better else "↓",
            n=int(keep.sum()),
            n_dropped=int((~keep).sum()),
        )
        row.update(_test(a[keep], b[keep], metric.higher_is_better, first_label, second_label, alpha))
        rows.append(row)
    frame = pd.DataFrame(rows)
    tested = frame.p_value.notna()
    frame["p_holm"] = math.nan
    if tested.any():
        frame.loc[tested, "p_holm"] = multipletests(frame.p_value[tested], alpha=alpha, method="holm")[1]
    return frame[COLUMNS]


def _test(a: np.ndarray, b: np.ndarray, higher_is_better: bool, label_a: str, label_b: str, alpha: float) -> dict:
    """Shapiro on the differences, then the one-sided test in favour of the better mean."""
    nan = dict(shapiro_p=math.nan, p_value=math.nan, significant=False)
    # order the samples (better, worse): the alternative is then always "better op worse"
    b_better = not a.size or (b.mean() >= a.mean() if higher_is_better else b.mean() <= a.mean())
    (better, worse), (l_better, l_worse) = ((b, a), (label_b, label_a)) if b_better else ((a, b), (label_a, label_b))
    op, alternative = (">", "greater") if higher_is_better else ("<", "less")
    hypothesis = f"{l_better} {op} {l_worse}"
    if a.size < 3:
        return dict(nan, hypothesis=hypothesis, test=TOO_FEW)
    diff = better - worse
    if not np.any(diff):
        return dict(nan, hypothesis=hypothesis, test=NO_DIFFERENCE)
    constant = np.ptp(diff) <= 1e-12 * np.abs(diff).max()
    shapiro_p = math.nan if constant else float(stats.shapiro(diff).pvalue)
    if shapiro_p >= alpha:  # False for NaN
        test, p = T_TEST, stats.ttest_rel(better, worse, alternative=alternative).pvalue
    else:
        with warnings.catch_warnings():  # ties and zeros: scipy falls back to the normal approximation
            warnings.simplefilter("ignore", UserWarning)
            test, p = WILCOXON, stats.wilcoxon(better, worse, alternative=alternative).pvalue
    p = float(p)
    return dict(
        shapiro_p=shapiro_p,
        hypothesis=hypothesis,
        test=test,
        p_value=p,
        significant=bool(p < alpha),
    )


def _paired(first: pd.DataFrame, second: pd.DataFrame, first_label: str, second_label: str) -> pd.DataFrame:
    """The two tables joined on subject; InputError if columns or subjects do not match."""
    needed = ["subject"] + [m.column for m in CHALLENGE_METRICS]
    for frame, label in ((first, first_label), (second, second_label)):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise InputError(f"metrics of pipeline {label}: missing columns {missing}")
        duplicated = frame.subject[frame.subject.duplicated()].tolist()
        if duplicated:
            raise InputError(f"metrics of pipeline {label}: subjects listed twice: {duplicated}")
    only_first = sorted(set(first.subject) - set(second.subject))
    only_second = sorted(set(second.subject) - set(first.subject))
    if only_first or only_second:
        raise InputError(
            f"pipelines {first_label} and {second_label} were not evaluated on the same subjects: "
            f"only in {first_label}: {only_first}; only in {second_label}: {only_second}"
        )
    if first.empty:
        raise InputError("no subjects to compare")
    return first[needed].merge(second[needed], on="subject", suffixes=("_1", "_2"))
