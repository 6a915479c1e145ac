"""Table 3 logic against scipy on crafted paired samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from liverseg.errors import InputError
from liverseg.metrics import CHALLENGE_METRICS
from liverseg.stats import COLUMNS, NO_DIFFERENCE, T_TEST, TOO_FEW, WILCOXON, compare_pipelines

N = 40


def frames(seed=0, n=N):
    """Two per-subject tables with unrelated noise in every challenge column."""
    rng = np.random.default_rng(seed)
    subjects = [f"im{i}" for i in range(n)]
    first = pd.DataFrame({"subject": subjects})
    second = pd.DataFrame({"subject": subjects[::-1]})  # row order must not matter
    for m in CHALLENGE_METRICS:
        first[m.column] = rng.uniform(0.2, 0.8, n)
        second[m.column] = rng.uniform(0.2, 0.8, n)
    return first, second


def aligned(first, second, column):
    s = second.set_index("subject").loc[first.subject, column].to_numpy()
    return first[column].to_numpy(), s


def row(table, region, metric):
    return table[(table.region == region) & (table.metric == metric)].iloc[0]


def test_normal_differences_use_a_paired_t_test_in_favour_of_the_better():
    first, second = frames()
    rng = np.random.default_rng(1)
    second_dice = first.liver_dice + rng.normal(0.02, 0.01, N)  # B better, normal differences
    second = second.set_index("subject")
    second.loc[first.subject, "liver_dice"] = second_dice.to_numpy()
    second = second.reset_index()

    table = compare_pipelines(first, second)
    r = row(table, "Liver", "Dice")
    a, b = aligned(first, second, "liver_dice")
    assert r.shapiro_p == pytest.approx(stats.shapiro(b - a).pvalue) and r.shapiro_p >= 0.05
    assert (r.hypothesis, r.test, r.direction) == ("B > M", T_TEST, "↑")
    assert r.p_value == pytest.approx(stats.ttest_rel(b, a, alternative="greater").pvalue)
    assert r.significant and r.n == N and r.n_dropped == 0


def test_skewed_differences_use_wilcoxon_and_lower_is_better():
    first, second = frames(2)
    rng = np.random.default_rng(3)
    # M has the smaller Hausdorff distances; the gap is heavily skewed
    second["liver_hd"] = second.subject.map(dict(zip(first.subject, first.liver_hd))) + rng.exponential(1, N) ** 3
    table = compare_pipelines(first, second)
    r = row(table, "Liver", "HD")
    a, b = aligned(first, second, "liver_hd")
    assert r.shapiro_p == pytest.approx(stats.shapiro(a - b).pvalue) and r.shapiro_p < 0.05
    assert (r.hypothesis, r.test, r.direction) == ("M < B", WILCOXON, "↓")
    assert r.p_value == pytest.approx(stats.wilcoxon(a, b, alternative="less").pvalue)
    assert r.significant


def test_labels_and_direction_follow_the_means():
    first, second = frames(4)
    second["tumor_burden_error"] = second.subject.map(dict(zip(first.subject, first.tumor_burden_error))) + 0.3
    second.loc[0, "tumor_burden_error"] += 0.01  # not constant
    table = compare_pipelines(first, second, first_label="multi", second_label="dual")
    r = row(table, "Tumor", "RMSE")
    assert r.hypothesis == "multi < dual"  # the lower error wins
    a, b = aligned(first, second, "tumor_burden_error")
    expected_test = T_TEST if stats.shapiro(a - b).pvalue >= 0.05 else WILCOXON
    assert r.test == expected_test


def test_nan_pairs_are_dropped_and_counted():
    first, second = frames(5)
    first.loc[[0, 1], "tumor_hd"] = np.nan
    second.loc[second.subject == "im2", "tumor_hd"] = np.nan
    table = compare_pipelines(first, second)
    r = row(table, "Tumor", "HD")
    assert (r.n, r.n_dropped) == (N - 3, 3)
    a, b = aligned(first, second, "tumor_hd")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    better, worse = (a, b) if a.mean() <= b.mean() else (b, a)
    test = stats.ttest_rel if stats.shapiro(better - worse).pvalue >= 0.05 else stats.wilcoxon
    assert r.p_value == pytest.approx(test(better, worse, alternative="less").pvalue)


def test_holm_adjustment_over_the_nine():
    table = compare_pipelines(*frames(6))
    assert list(table.columns) == COLUMNS
    assert [(r.region, r.metric) for r in table.itertuples()] == [(m.region, m.name) for m in CHALLENGE_METRICS]
    expected = multipletests(table.p_value, method="holm")[1]
    np.testing.assert_allclose(table.p_holm, expected)
    assert (table.p_holm >= table.p_value - 1e-15).all()


def test_identical_pipelines_do_not_crash():
    first, _ = frames(7)
    table = compare_pipelines(first, first.copy())
    assert (table.test == NO_DIFFERENCE).all()
    assert table.p_value.isna().all() and table.p_holm.isna().all() and not table.significant.any()


def test_fewer_than_three_pairs():
    first, second = frames(8, n=2)
    table = compare_pipelines(first, second)
    assert (table.test == TOO_FEW).all() and table.p_value.isna().all()
    first, second = frames(9, n=5)
    first.loc[:2, "tumor_dice"] = np.nan  # three of five dropped on one row only
    table = compare_pipelines(first, second)
    assert row(table, "Tumor", "Dice").test == TOO_FEW
    assert row(table, "Liver", "Dice").test in (T_TEST, WILCOXON)
    assert not math.isnan(row(table, "Liver", "Dice").p_holm)


def test_constant_nonzero_difference_goes_to_wilcoxon():
    first, second = frames(10, n=8)
    second["liver_dice"] = second.subject.map(dict(zip(first.subject, first.liver_dice))) + 0.125
    r = row(compare_pipelines(first, second), "Liver", "Dice")
    assert math.isnan(r.shapiro_p) and r.test == WILCOXON and r.hypothesis == "B > M"
    assert r.p_value == pytest.approx(1 / 2**8)


def test_mismatched_inputs_raise():
    first, second = frames(11)
    with pytest.raises(InputError, match="same subjects"):
        compare_pipelines(first, second.iloc[1:])
    with pytest.raises(InputError, match="missing columns"):
        compare_pipelines(first.drop(columns="liver_hd"), second)
    with pytest.raises(InputError, match="twice"):
        compare_pipelines(pd.concat([first, first.iloc[:1]]), second)
