"""Cross-validation folds stratified by contrast phase (paper §2.1, Table 1).

The cohort is dealt into `n_folds` test groups: subjects are ordered phase by phase
(shuffled within each phase by the seed) and dealt round-robin, the deal continuing
across phases, so every group has the same size (±1) and every phase is spread as
evenly as possible. Fold k tests on group k and validates on a phase-stratified part of
group k+1, so the test sets partition the cohort and no subject validates twice.
"""

from __future__ import annotations

import math
import random
from collections import Counter

from .errors import InputError


def _largest_remainder(counts: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over the keys in proportion to `counts`."""
    size = sum(counts.values())
    exact = {k: total * c / size for k, c in counts.items()}
    share = {k: math.floor(v) for k, v in exact.items()}
    # ties broken by key for determinism
    for key in sorted(exact, key=lambda k: (share[k] - exact[k], k))[: total - sum(share.values())]:
        share[key] += 1
    return share


def make_folds(phases: dict[str, str], n_folds: int = 5, validation_fraction: float = 8 / 60, seed: int = 0) -> dict:
    """Folds as {"seed", "folds": [{"fold": 1.., "train", "validation", "test"}]}."""
    subjects = sorted(phases)
    if len(subjects) < 3 * n_folds:
        raise InputError(f"{len(subjects)} subjects are too few for {n_folds} folds (need at least {3 * n_folds})")
    rng = random.Random(seed)
    ordered = []
    for phase in sorted(set(phases.values())):
        members = [s for s in subjects if phases[s] == phase]
        rng.shuffle(members)
        ordered.extend(members)
    offset = rng.randrange(n_folds)  # which group the first phase starts in
    groups = [[] for _ in range(n_folds)]
    for i, subject in enumerate(ordered):
        groups[(i + offset) % n_folds].append(subject)

    n_validation = max(1, round(len(subjects) * validation_fraction))
    folds = []
    for k in range(n_folds):
        test = groups[k]
        donor = groups[(k + 1) % n_folds]
        take = _largest_remainder(Counter(phases[s] for s in donor), min(n_validation, len(donor) - 1))
        validation = []
        for phase, count in sorted(take.items()):
            validation.extend([s for s in donor if phases[s] == phase][:count])
        held = set(test) | set(validation)
        folds.append(
            {
                "fold": k + 1,
                "train": sorted((s for s in subjects if s not in held), key=_natural),
                "validation": sorted(validation, key=_natural),
                "test": sorted(test, key=_natural),
            }
        )
    return {"seed": seed, "folds": folds}


def _natural(subject: str):
    digits = "".join(c for c in subject if c.isdigit())
    return (int(digits) if digits else -1, subject)


def fold_of_subject(folds: dict) -> dict[str, int]:
    """The fold whose test split holds each subject."""
    return {s: f["fold"] for f in folds["folds"] for s in f["test"]}


def write_folds(cohort_tsv, folds_json, table_stem, *, seed: int, n_folds: int, validation_fraction: float) -> dict:
    """The folds stage: folds.json and Table 1 (tsv, md) from cohort.tsv."""
    from .cohort import read_cohort
    from .io import write_json
    from .tables import table1, write_table

    phases = {r["subject"]: r["phase"] for r in read_cohort(cohort_tsv)}
    folds = make_folds(phases, n_folds=n_folds, validation_fraction=validation_fraction, seed=seed)
    write_json(folds_json, folds)
    write_table(table1(folds, phases), table_stem, formats=("tsv", "md"),
                caption="Table 1: phase counts per split and fold (A arterial, D delayed, NC no contrast, P portal, U unknown)")
    return folds


def read_folds(path) -> dict:
    import json
    from pathlib import Path

    return json.loads(Path(path).read_text())
