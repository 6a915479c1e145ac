"""Cross-validation folds by contrast phase (paper §2.1, Table 1), two ways of dealing.

`stratified` (any cohort): the cohort is dealt into `n_folds` test groups: subjects are
ordered phase by phase (shuffled within each phase by the seed) and dealt round-robin,
the deal continuing across phases, so every group has the same size (±1) and every phase
is spread as evenly as possible. Fold k tests on group k and validates on a
phase-stratified part of group k+1, so the test sets partition the cohort and no subject
validates twice.

`paper` (ATLAS's 60 subjects): every train / validation / test count per phase and fold
is the paper's Table 1 (PAPER_TABLE1); which subjects fill those counts is drawn by the
seed. The test sets still partition the cohort. The paper's validation sets cannot be
disjoint (its five folds validate on 4 non-contrast subjects, ATLAS has 2), so each
fold's validation takes, within a phase, the subjects that validated least so far.
"""

from __future__ import annotations

import math
import random
from collections import Counter

from .cohort import PHASES, natural_key
from .errors import ConfigError, InputError

SCHEMES = ("stratified", "paper")
SPLITS = ("train", "validation", "test")
# The paper's Table 1: per fold and split, the subjects of each phase in PHASES' order
# (A arterial, D delayed, NC no contrast, P portal, U unknown).
PAPER_TABLE1 = {
    1: {"train": (23, 6, 1, 5, 5), "validation": (3, 0, 1, 3, 1), "test": (7, 2, 0, 2, 1)},
    2: {"train": (24, 6, 1, 4, 5), "validation": (2, 1, 0, 4, 1), "test": (7, 1, 1, 2, 1)},
    3: {"train": (24, 5, 1, 4, 6), "validation": (2, 1, 1, 4, 0), "test": (7, 2, 0, 2, 1)},
    4: {"train": (25, 5, 1, 5, 4), "validation": (2, 1, 1, 3, 1), "test": (6, 2, 0, 2, 2)},
    5: {"train": (24, 6, 0, 6, 4), "validation": (3, 1, 1, 2, 1), "test": (6, 1, 1, 2, 2)},
}


def _largest_remainder(counts: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over the keys in proportion to `counts`."""
    size = sum(counts.values())
    exact = {k: total * c / size for k, c in counts.items()}
    share = {k: math.floor(v) for k, v in exact.items()}
    # ties broken by key for determinism
    for key in sorted(exact, key=lambda k: (share[k] - exact[k], k))[: total - sum(share.values())]:
        share[key] += 1
    return share


def make_folds(
    phases: dict[str, str],
    n_folds: int = 5,
    validation_fraction: float = 8 / 60,
    seed: int = 0,
    scheme: str = "stratified",
) -> dict:
    """Folds as {"seed", "scheme", "folds": [{"fold": 1.., "train", "validation", "test"}]}.

    `scheme`: "stratified" (any cohort) or "paper" (the paper's Table 1 counts; needs
    ATLAS's phase totals and 5 folds, and ignores `validation_fraction`).
    Raises ConfigError for an unknown scheme or a cohort the paper's counts do not fit.
    """
    if scheme == "paper":
        if n_folds != len(PAPER_TABLE1):
            raise ConfigError(
                f"folds.n_folds {n_folds}: folds.scheme 'paper' deals the paper's {len(PAPER_TABLE1)} folds"
            )
        return {"seed": seed, "scheme": scheme, "folds": paper_folds(phases, seed)}
    if scheme != "stratified":
        raise ConfigError(f"folds.scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
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
                "train": sorted((s for s in subjects if s not in held), key=natural_key),
                "validation": sorted(validation, key=natural_key),
                "test": sorted(test, key=natural_key),
            }
        )
    return {"seed": seed, "scheme": scheme, "folds": folds}


def paper_totals() -> dict[str, int]:
    """Subjects per phase in the paper's cohort (one fold's three splits added up)."""
    return {p: sum(PAPER_TABLE1[1][split][i] for split in SPLITS) for i, p in enumerate(PHASES)}


def _describe(counts: dict[str, int]) -> str:
    return f"{sum(counts.values())} subjects (" + ", ".join(f"{p} {counts.get(p, 0)}" for p in PHASES) + ")"


def paper_folds(phases: dict[str, str], seed: int) -> list[dict]:
    """The five folds of the paper's Table 1, subjects drawn by `seed` within its counts."""
    totals = Counter(phases.values())
    if dict(totals) != {p: n for p, n in paper_totals().items() if n}:
        raise InputError(
            f"folds.scheme 'paper': the paper's Table 1 deals {_describe(paper_totals())}; this cohort has "
            f"{_describe(totals)}. Use folds.scheme: stratified for other cohorts"
        )
    rng = random.Random(seed)
    members = {}
    for phase in PHASES:
        members[phase] = sorted((s for s in phases if phases[s] == phase), key=natural_key)
        rng.shuffle(members[phase])
    test: dict[int, list[str]] = {k: [] for k in PAPER_TABLE1}
    for i, phase in enumerate(PHASES):  # consecutive runs of the shuffled phase: a partition
        start = 0
        for k, counts in PAPER_TABLE1.items():
            test[k] += members[phase][start : start + counts["test"][i]]
            start += counts["test"][i]
    uses: Counter = Counter()
    folds = []
    for k, counts in PAPER_TABLE1.items():
        validation = []
        for i, phase in enumerate(PHASES):
            candidates = [s for s in members[phase] if s not in test[k]]
            candidates.sort(key=lambda s: uses[s])  # stable: ties keep the seed's order
            validation += candidates[: counts["validation"][i]]
        uses.update(validation)
        held = set(test[k]) | set(validation)
        folds.append(
            {
                "fold": k,
                "train": sorted((s for s in phases if s not in held), key=natural_key),
                "validation": sorted(validation, key=natural_key),
                "test": sorted(test[k], key=natural_key),
            }
        )
    return folds


def fold_of_subject(folds: dict) -> dict[str, int]:
    """The fold whose test split holds each subject."""
    return {s: f["fold"] for f in folds["folds"] for s in f["test"]}


def write_folds(
    cohort_tsv,
    folds_json,
    table_stem,
    *,
    seed: int,
    n_folds: int,
    validation_fraction: float,
    scheme: str = "stratified",
) -> dict:
    """The folds step: folds.json and Table 1 (tsv, md) from cohort.tsv."""
    from .cohort import read_cohort
    from .io import write_json
    from .tables import table1, write_table_files

    phases = {r["subject"]: r["phase"] for r in read_cohort(cohort_tsv)}
    folds = make_folds(phases, n_folds=n_folds, validation_fraction=validation_fraction, seed=seed, scheme=scheme)
    write_json(folds_json, folds)
    write_table_files(
        table1(folds, phases),
        table_stem,
        formats=("tsv", "md"),
        caption="Table 1: phase counts per split and fold (A arterial, D delayed, NC no contrast, P portal, U unknown)",
    )
    return folds


def read_folds(path) -> dict:
    import json
    from pathlib import Path

    return json.loads(Path(path).read_text())
