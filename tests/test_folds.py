"""Fold invariants (paper §2.1): sizes, a partition of the cohort, phase stratification."""

from __future__ import annotations

from collections import Counter

import pytest

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
