"""Did the models learn? The learning table: one row per trained model and fold, from its
history.tsv (train.py), with the validation Dice of each class at the last epoch, at the
kept epoch (the lowest validation loss, whose weights model.pt holds) and at its best.

The curves.png of each model shows one run; this table puts the cross-validation side by
side, so that a fold that did not learn, or a last epoch far below the kept one, shows at
a glance (docs/reproduction.md reads its targets from it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from .errors import InputError

DICE_PREFIX = "val_dice_"
NEEDED = ("epoch", "is_best", "seconds")


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """A training history written by `train.train_model`; InputError naming the file when it
    cannot be read or lacks the columns the table needs."""
    try:
        history = pd.read_csv(path, sep="\t")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the training history ({exc})") from None
    missing = [c for c in NEEDED if c not in history.columns]
    if not dice_classes(history):
        missing.append(f"{DICE_PREFIX}<class>")
    if missing:
        raise InputError(f"{path}: not a training history (no column {', '.join(missing)})")
    if history.empty:
        raise InputError(f"{path}: the training history has no epoch")
    return history


def dice_classes(history: pd.DataFrame) -> list[str]:
    """The classes validated in a history (liver, tumor), in its column order."""
    return [c[len(DICE_PREFIX) :] for c in history.columns if c.startswith(DICE_PREFIX) and c != f"{DICE_PREFIX}mean"]


def kept_row(history: pd.DataFrame) -> pd.Series | None:
    """The history's row of the kept weights (model.pt): the last epoch marked is_best;
    None when no epoch is."""
    kept_rows = history[history["is_best"].astype(bool)]
    return kept_rows.iloc[-1] if len(kept_rows) else None


def learning_row(history: pd.DataFrame) -> dict:
    """epochs, kept epoch, training minutes and, per validated class, the Dice at the last
    epoch (final), at the kept epoch (kept) and its highest (max)."""
    kept = kept_row(history)
    if kept is None:
        kept = history.iloc[-1]
    row = {
        "epochs": int(history["epoch"].iloc[-1]),
        "kept_epoch": int(kept["epoch"]),
        "minutes": pd.to_numeric(history["seconds"], errors="coerce").sum() / 60,
    }
    for name in dice_classes(history):
        dice = pd.to_numeric(history[f"{DICE_PREFIX}{name}"], errors="coerce")
        row[f"{name}_final"] = dice.iloc[-1]
        row[f"{name}_kept"] = dice.loc[kept.name]
        row[f"{name}_max"] = dice.max()
    return row


def learning_table(histories: Mapping[tuple[str, int], str | os.PathLike]) -> pd.DataFrame:
    """One row per (model, fold) -> history.tsv, in that order; a class that a model does
    not validate (the binary models' other class) is NaN in its rows."""
    rows = [
        {"model": model, "fold": fold, **learning_row(read_history(path))} for (model, fold), path in histories.items()
    ]
    table = pd.DataFrame(rows)
    classes = [c for c in ("liver", "tumor") if f"{c}_final" in table.columns]
    classes += sorted({c.removesuffix("_final") for c in table.columns if c.endswith("_final")} - set(classes))
    dice = [f"{c}_{s}" for c in classes for s in ("final", "kept", "max")]
    return table[["model", "fold", "epochs", "kept_epoch", *dice, "minutes"]]
