"""Folder evaluation: pairing by challenge names, validation before any output, the TSV."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from liverseg.errors import InputError
from liverseg.evaluate import evaluate_folders, evaluate_pairs, pair_folders
from liverseg.metrics import METRIC_KEYS, subject_metrics

TOLERANCE_MM = 5.0  # the challenge's surface-Dice tolerance

SPACING = (0.8, 0.8, 3.0)
AFFINE = np.diag([*SPACING, 1.0])


def labels(seed: int, shape=(24, 20, 8), tumor=True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.uint8)
    x, y = rng.integers(3, 6, size=2)
    out[x : x + 14, y : y + 10, 1:7] = 1
    if tumor:
        out[x + 3 : x + 6, y + 2 : y + 5, 2:5] = 2
    return out


def save(path: Path, data: np.ndarray, affine=AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def folders(tmp_path):
    """Ground truth lb0..lb2; predictions im0, im1 (challenge names) and lb2 (same name)."""
    gt_dir, pred_dir = tmp_path / "labelsTr", tmp_path / "pred"
    arrays = {}
    for i in range(3):
        gt = labels(i)
        pred = labels(i + 10, tumor=(i != 1))  # subject 1: tumour missed
        save(gt_dir / f"lb{i}.nii.gz", gt)
        save(pred_dir / (f"im{i}.nii.gz" if i < 2 else f"lb{i}.nii.gz"), pred)
        arrays[f"im{i}" if i < 2 else f"lb{i}"] = (gt, pred)
    return gt_dir, pred_dir, arrays


def test_evaluate_folders_pairs_computes_and_writes(folders, tmp_path):
    gt_dir, pred_dir, arrays = folders
    out = tmp_path / "metrics" / "m.tsv"
    frame = evaluate_folders(pred_dir, gt_dir, out, tolerance_mm=TOLERANCE_MM, jobs=1)
    assert list(frame.columns) == ["subject", *METRIC_KEYS]
    assert list(frame.subject) == ["im0", "im1", "lb2"]
    for _, row in frame.iterrows():
        expected = subject_metrics(*arrays[row.subject], SPACING, TOLERANCE_MM)
        assert row[list(METRIC_KEYS)].tolist() == pytest.approx(list(expected.values()), nan_ok=True)
    assert math.isnan(frame.set_index("subject").loc["im1", "tumor_hd"])
    text = out.read_text()
    assert text.splitlines()[0].split("\t") == ["subject", *METRIC_KEYS]
    assert "\tNaN\t" in text
    assert pd.read_csv(out, sep="\t").shape == (3, 14)


def test_parallel_equals_serial(folders, tmp_path):
    gt_dir, pred_dir, _ = folders
    serial = evaluate_folders(pred_dir, gt_dir, tmp_path / "a.tsv", tolerance_mm=TOLERANCE_MM, jobs=1)
    parallel = evaluate_folders(pred_dir, gt_dir, tmp_path / "b.tsv", tolerance_mm=TOLERANCE_MM, jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_orientation_is_made_canonical(tmp_path):
    # the prediction stored with its first axis flipped (and an affine saying so) is the same volume
    gt = labels(0)
    flipped_affine = AFFINE.copy()
    flipped_affine[0, 0] = -SPACING[0]
    flipped_affine[0, 3] = (gt.shape[0] - 1) * SPACING[0]
    save(tmp_path / "gt" / "lb4.nii.gz", gt)
    save(tmp_path / "pred" / "im4.nii.gz", gt[::-1].copy(), flipped_affine)
    frame = evaluate_folders(tmp_path / "pred", tmp_path / "gt", tmp_path / "m.tsv", tolerance_mm=TOLERANCE_MM, jobs=1)
    assert frame.loc[0, "liver_dice"] == 1.0 and frame.loc[0, "tumor_hd"] == 0.0


def test_evaluate_pairs_takes_explicit_subjects(folders):
    gt_dir, pred_dir, arrays = folders
    frame = evaluate_pairs(
        [
            ("sub-b", gt_dir / "lb1.nii.gz", pred_dir / "im1.nii.gz"),
            ("sub-a", gt_dir / "lb0.nii.gz", pred_dir / "im0.nii.gz"),
        ],
        tolerance_mm=TOLERANCE_MM,
        jobs=1,
    )
    assert list(frame.subject) == ["sub-b", "sub-a"]  # the order given
    assert frame.loc[1, "liver_dice"] == pytest.approx(
        subject_metrics(*arrays["im0"], SPACING, TOLERANCE_MM)["liver_dice"]
    )


def test_pair_folders_accepts_same_names_and_plain_nii(tmp_path):
    save(tmp_path / "gt" / "case7.nii", labels(0))
    save(tmp_path / "pred" / "case7.nii.gz", labels(0))
    assert [p[0] for p in pair_folders(tmp_path / "pred", tmp_path / "gt")] == ["case7"]


def _assert_fails_without_output(pred_dir, gt_dir, out, *needles):
    with pytest.raises(InputError) as info:
        evaluate_folders(pred_dir, gt_dir, out, tolerance_mm=TOLERANCE_MM, jobs=1)
    for needle in needles:
        assert needle in str(info.value)
    assert not out.exists()
    assert not list(out.parent.glob(".*"))  # no temporary file left behind either


def test_missing_partners_are_named(folders, tmp_path):
    gt_dir, pred_dir, _ = folders
    (pred_dir / "im0.nii.gz").unlink()
    save(pred_dir / "im9.nii.gz", labels(9))
    _assert_fails_without_output(pred_dir, gt_dir, tmp_path / "out" / "m.tsv", "lb0.nii.gz", "im9.nii.gz")


def test_shape_and_spacing_mismatch(folders, tmp_path):
    gt_dir, pred_dir, _ = folders
    save(pred_dir / "im0.nii.gz", labels(0, shape=(24, 20, 9)))
    save(pred_dir / "im1.nii.gz", labels(1), np.diag([0.8, 0.8, 2.5, 1.0]))
    _assert_fails_without_output(
        pred_dir, gt_dir, tmp_path / "out" / "m.tsv", "im0.nii.gz: shape", "im1.nii.gz: spacing"
    )


def test_bad_labels_are_named(folders, tmp_path):
    gt_dir, pred_dir, _ = folders
    bad = labels(2)
    bad[0, 0, 0] = 3
    save(pred_dir / "lb2.nii.gz", bad)
    _assert_fails_without_output(pred_dir, gt_dir, tmp_path / "out" / "m.tsv", "lb2.nii.gz", "labels outside", "3")


def test_unreadable_file_is_named(folders, tmp_path):
    gt_dir, pred_dir, _ = folders
    (pred_dir / "im1.nii.gz").write_bytes(b"not a nifti file")
    _assert_fails_without_output(pred_dir, gt_dir, tmp_path / "out" / "m.tsv", "im1.nii.gz", "cannot read")


def test_empty_or_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no ground truth NIfTI"):
        pair_folders(tmp_path / "empty", tmp_path / "empty")
    with pytest.raises(InputError, match="folder not found"):
        pair_folders(tmp_path / "empty", tmp_path / "nope")
