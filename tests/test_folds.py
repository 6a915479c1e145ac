"""Fold invariants (paper §2.1): sizes, a partition of the cohort, phase stratification."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from liverseg.errors import ConfigError, InputError
from liverseg.folds import fold_of_subject, make_folds

ATLAS_COUNTS = {"A": 33, "P": 10, "D": 8, "U": 7, "NC": 2}


def atlas_phases(counts=ATLAS_COUNTS):
    phases, n = {}, 0
    for phase, count in counts.items():
        for _ in range(count):
            phases[f"im{n}"] = phase
            n += 1
    return phases


@pytest.mark.parametrize("seed", [0, 1, 2023])
def test_paper_sizes_and_partition(seed):
    phases = atlas_phases()
    folds = make_folds(phases, n_folds=5, validation_fraction=8 / 60, seed=seed)["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3, 4, 5]
    for fold in folds:
        assert (len(fold["train"]), len(fold["validation"]), len(fold["test"])) == (40, 8, 12)
        splits = [set(fold[s]) for s in ("train", "validation", "test")]
        assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
        assert set().union(*splits) == set(phases)
    tests = [s for fold in folds for s in fold["test"]]
    assert sorted(tests) == sorted(phases)  # the five test sets partition the cohort
    validations = [s for fold in folds for s in fold["validation"]]
    assert len(validations) == len(set(validations))  # nobody validates twice
    assert set(fold_of_subject({"folds": folds})) == set(phases)


def test_phases_spread_evenly_over_test_sets():
    phases = atlas_phases()
    folds = make_folds(phases, seed=5)["folds"]
    for phase, total in ATLAS_COUNTS.items():
        counts = [Counter(phases[s] for s in fold["test"])[phase] for fold in folds]
        assert max(counts) - min(counts) <= 1, (phase, counts)
        assert sum(counts) == total


def test_validation_is_stratified():
    phases = atlas_phases()
    for fold in make_folds(phases, seed=3)["folds"]:
        counts = Counter(phases[s] for s in fold["validation"])
        # 8 of 60 in proportion: arterial ~4.4, portal ~1.3, delayed ~1.1
        assert 3 <= counts["A"] <= 6 and counts["P"] >= 1 and counts["D"] >= 1


def test_deterministic_and_seed_dependent():
    phases = atlas_phases()
    assert make_folds(phases, seed=11) == make_folds(phases, seed=11)
    assert make_folds(phases, seed=11) != make_folds(phases, seed=12)


def test_other_cohort_sizes_keep_proportions():
    phases = atlas_phases({"A": 50, "P": 20, "D": 15, "U": 10, "NC": 5})
    for fold in make_folds(phases, seed=0)["folds"]:
        assert (len(fold["train"]), len(fold["validation"]), len(fold["test"])) == (67, 13, 20)


def test_too_few_subjects():
    from liverseg.errors import InputError

    with pytest.raises(InputError, match="too few"):
        make_folds(atlas_phases({"A": 10}), n_folds=5)


# ------------------------------------------------------------- the paper's Table 1

# Table 1 as printed in the paper (reference/paper.md §2.1): fold, then A D NC P U of
# the training, validation and test splits.
PAPER_TABLE1_TEXT = """
1	23	6	1	5	5	3	0	1	3	1	7	2	0	2	1
2	24	6	1	4	5	2	1	0	4	1	7	1	1	2	1
3	24	5	1	4	6	2	1	1	4	0	7	2	0	2	1
4	25	5	1	5	4	2	1	1	3	1	6	2	0	2	2
5	24	6	0	6	4	3	1	1	2	1	6	1	1	2	2
"""
# ATLAS's phase strings (misspellings included) in their counts over the 60 subjects.
ATLAS_STRINGS = ["arterial"] * 33 + ["portal"] * 10 + ["delayed"] * 8 + ["unkown"] * 7 + ["no contrast agent"] * 2


def test_paper_scheme_regenerates_table1_cell_for_cell(tmp_path):
    """An ATLAS-layout cohort with ATLAS's phase counts (shuffled over the subjects):
    the folds stage writes the paper's Table 1, every cell."""
    import random

    from conftest import make_atlas

    from liverseg.cohort import write_cohort
    from liverseg.folds import write_folds

    strings = list(ATLAS_STRINGS)
    random.Random(0).shuffle(strings)
    root = make_atlas(tmp_path / "train", n_subjects=60, phases=strings)
    write_cohort(root, tmp_path / "cohort.tsv")
    folds = write_folds(
        tmp_path / "cohort.tsv",
        tmp_path / "folds.json",
        tmp_path / "table1",
        seed=2023,
        n_folds=5,
        validation_fraction=8 / 60,
        scheme="paper",
    )
    table = pd.read_csv(tmp_path / "table1.tsv", sep="\t")
    expected = [[int(v) for v in line.split("\t")] for line in PAPER_TABLE1_TEXT.strip().splitlines()]
    assert table.to_numpy().tolist() == expected
    assert list(table.columns[:6]) == [
        "Fold",
        "Training (N=40) A",
        "Training (N=40) D",
        "Training (N=40) NC",
        "Training (N=40) P",
        "Training (N=40) U",
    ]
    assert sorted(s for f in folds["folds"] for s in f["test"]) == sorted(f"im{i}" for i in range(60))


@pytest.mark.parametrize("seed", [0, 7])
def test_paper_scheme_is_a_valid_cross_validation_drawn_by_the_seed(seed):
    phases = atlas_phases()
    made = make_folds(phases, seed=seed, scheme="paper")
    assert made == make_folds(phases, seed=seed, scheme="paper")
    assert made != make_folds(phases, seed=seed + 1, scheme="paper")
    folds = made["folds"]
    for fold in folds:
        splits = [set(fold[s]) for s in ("train", "validation", "test")]
        assert sum(map(len, splits)) == 60 and set().union(*splits) == set(phases)
    assert sorted(s for fold in folds for s in fold["test"]) == sorted(phases)
    # a subject validates twice only in a phase where Table 1 validates more subjects than
    # it has (NC: 4 of 2, P: 16 of 10)
    uses = Counter(s for fold in folds for s in fold["validation"])
    assert {phases[s] for s, n in uses.items() if n > 1} <= {"NC", "P"}


def test_paper_scheme_refuses_other_cohorts_naming_the_totals():
    phases = atlas_phases({"A": 30, "P": 13, "D": 8, "U": 7, "NC": 2})
    message = (
        r"the paper's Table 1 deals 60 subjects \(A 33, D 8, NC 2, P 10, U 7\); this cohort has "
        r"60 subjects \(A 30, D 8, NC 2, P 13, U 7\)"
    )
    with pytest.raises(InputError, match=message):
        make_folds(phases, seed=0, scheme="paper")
    with pytest.raises(ConfigError, match="folds.n_folds 3"):
        make_folds(atlas_phases(), n_folds=3, scheme="paper")
    with pytest.raises(ConfigError, match="folds.scheme 'table1'"):
        make_folds(atlas_phases(), scheme="table1")
