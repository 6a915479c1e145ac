"""The learning table: every model's and fold's validation Dice, read from its history.tsv."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from liverseg.errors import InputError
from liverseg.learning import learning_table
from liverseg.workflow.jobs import learning_table_job


def history(path, dice: dict[str, list[float]], best: list[bool]) -> str:
    """A history.tsv with the columns train.train_model writes, one row per epoch."""
    epochs = len(best)
    frame = pd.DataFrame(
        {
            "epoch": range(1, epochs + 1),
            "train_loss": [1.0 / e for e in range(1, epochs + 1)],
            "val_loss": [0.5] * epochs,
            **{f"val_dice_{name}": values for name, values in dice.items()},
            "val_dice_mean": pd.DataFrame(dice).mean(axis=1),
            "lr": [3e-3] * epochs,
            "seconds": [30.0] * epochs,
            "data_seconds": [1.0] * epochs,
            "step_seconds": [20.0] * epochs,
            "is_best": best,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)
    return str(path)


@pytest.fixture
def runs(tmp_path):
    multiclass = history(
        tmp_path / "ahnet_multiclass/fold1/history.tsv",
        {"liver": [0.3, 0.8, 0.6], "tumor": [0.0, 0.1, 0.2]},
        [True, True, False],
    )
    tumour = history(tmp_path / "ahnet_tumor/fold1/history.tsv", {"tumor": [0.05, 0.25]}, [True, False])
    return {("ahnet_multiclass", 1): multiclass, ("ahnet_tumor", 1): tumour}


def test_final_kept_and_highest_dice_per_class(runs):
    table = learning_table(runs).set_index("model")
    assert list(table.columns) == [
        "fold",
        "epochs",
        "kept_epoch",
        *[f"{c}_{s}" for c in ("liver", "tumor") for s in ("final", "kept", "max")],
        "minutes",
    ]
    multiclass = table.loc["ahnet_multiclass"]
    # the last epoch fell below the kept one (the lowest validation loss, epoch 2)
    assert (multiclass.epochs, multiclass.kept_epoch) == (3, 2)
    assert (multiclass.liver_final, multiclass.liver_kept, multiclass.liver_max) == (0.6, 0.8, 0.8)
    assert (multiclass.tumor_final, multiclass.tumor_kept, multiclass.tumor_max) == (0.2, 0.1, 0.2)
    assert multiclass.minutes == pytest.approx(1.5)
    tumour = table.loc["ahnet_tumor"]
    assert (tumour.kept_epoch, tumour.tumor_final, tumour.tumor_kept) == (1, 0.25, 0.05)
    assert math.isnan(tumour.liver_final)  # a binary tumour model does not segment the liver


def test_job_writes_tsv_and_markdown(runs, tmp_path):
    learning_table_job(runs, tmp_path / "tables/learning")
    written = pd.read_csv(tmp_path / "tables/learning.tsv", sep="\t")
    assert written[["model", "fold"]].values.tolist() == [["ahnet_multiclass", 1], ["ahnet_tumor", 1]]
    markdown = (tmp_path / "tables/learning.md").read_text()
    assert "| ahnet_multiclass | 1 | 3 | 2 | 0.6 | 0.8 | 0.8 |" in markdown


def test_missing_or_foreign_history_names_the_file(runs, tmp_path):
    missing = tmp_path / "dynunet_multiclass/fold1/history.tsv"
    with pytest.raises(InputError, match=rf"{missing}: cannot read the training history"):
        learning_table({**runs, ("dynunet_multiclass", 1): missing})
    foreign = tmp_path / "metrics.tsv"
    foreign.write_text("subject\tliver_dice\nim1\t0.9\n")
    with pytest.raises(InputError, match=rf"{foreign}: not a training history \(no column epoch, is_best"):
        learning_table({("ahnet_liver", 1): foreign})
