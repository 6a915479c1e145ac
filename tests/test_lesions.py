"""Lesion-wise uncertainty (paper eq. 1), TP/FP status (also filled in afterwards, for the
held-out ensemble), volumes, AUROC and Spearman."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from liverseg.errors import InputError
from liverseg.lesions import (
    COLUMNS,
    TRUTH_COLUMNS,
    detection_recall,
    fill_status,
    lesion_table,
    read_lesion_table,
    spearman,
    truth_lesion_table,
    uncertainty_auroc,
)


def two_lesions():
    seg = np.zeros((12, 12, 6), np.uint8)
    seg[1:11, 1:11, 1:5] = 1
    seg[2:4, 2:4, 2] = 2  # lesion 1: 4 voxels
    seg[7:9, 7:10, 3] = 2  # lesion 2: 6 voxels
    prob = np.zeros(seg.shape, np.float32)
    prob[2:4, 2:4, 2] = [[0.9, 0.8], [0.7, 0.6]]
    prob[7:9, 7:10, 3] = 0.25
    return seg, prob


def test_uncertainty_is_one_minus_the_mean_tumor_probability():
    seg, prob = two_lesions()
    table = lesion_table(seg, prob, (1.0, 1.0, 1.0), None, "im0")
    assert list(table.columns) == COLUMNS
    assert table["lesion"].tolist() == [1, 2]
    assert table["voxels"].tolist() == [4, 6]
    assert table["uncertainty"].tolist() == pytest.approx([1 - 0.75, 1 - 0.25], abs=1e-7)
    assert table["subject"].tolist() == ["im0", "im0"]
    assert table["status"].tolist() == ["", ""]  # no ground truth


def test_status_is_tp_on_any_overlap_with_the_ground_truth_tumor():
    seg, prob = two_lesions()
    gt = np.zeros(seg.shape, np.uint8)
    gt[1:11, 1:11, 1:5] = 1
    gt[3, 3, 2] = 2  # one voxel of lesion 1
    gt[7:9, 7:10, 2] = 2  # next to lesion 2, not overlapping
    table = lesion_table(seg, prob, (1.0, 1.0, 1.0), gt, "im0")
    assert table["status"].tolist() == ["TP", "FP"]


def test_volumes_use_the_anisotropic_spacing():
    seg, prob = two_lesions()
    table = lesion_table(seg, prob, (0.5, 0.8, 3.0), None, "im1")
    assert table["volume_mm3"].tolist() == pytest.approx([4 * 1.2, 6 * 1.2])


def test_centroids_are_in_voxel_coordinates_of_the_full_volume():
    seg, prob = two_lesions()
    table = lesion_table(seg, prob, (1.0, 1.0, 1.0), None, "im0")
    assert table.loc[0, ["centroid_x", "centroid_y", "centroid_z"]].tolist() == pytest.approx([2.5, 2.5, 2.0])
    assert table.loc[1, ["centroid_x", "centroid_y", "centroid_z"]].tolist() == pytest.approx([7.5, 8.0, 3.0])


def test_lesions_touching_by_a_corner_are_one_lesion():
    seg = np.zeros((6, 6, 6), np.uint8)
    seg[1, 1, 1] = 2
    seg[2, 2, 2] = 2
    table = lesion_table(seg, np.full(seg.shape, 0.5, np.float32), (1.0, 1.0, 1.0), None, "im0")
    assert len(table) == 1 and table["voxels"].iloc[0] == 2


def test_no_lesion_gives_an_empty_table_with_the_columns():
    seg = np.zeros((4, 4, 4), np.uint8)
    table = lesion_table(seg, np.zeros(seg.shape, np.float32), (1.0, 1.0, 1.0), seg, "im0")
    assert table.empty and list(table.columns) == COLUMNS


def test_auroc_equals_the_hand_computed_value():
    table = pd.DataFrame(
        {
            "uncertainty": [0.5, 0.3, 0.1, 0.3, 0.2, 0.9],
            "status": ["FP", "FP", "TP", "TP", "TP", ""],
        }
    )
    # FP 0.5 beats the three TPs (3); FP 0.3 beats 0.1 and 0.2 and ties 0.3 (2.5); 5.5 / 6.
    assert uncertainty_auroc(table) == pytest.approx(5.5 / 6)
    assert uncertainty_auroc(table.assign(status=["TP"] * 6)) != uncertainty_auroc(table)
    assert math.isnan(uncertainty_auroc(table.assign(status=["TP"] * 6)))


def test_spearman_against_log_volume():
    table = pd.DataFrame({"uncertainty": [0.9, 0.5, 0.4, 0.1], "volume_mm3": [10.0, 100.0, 1000.0, 1e4]})
    rho, p = spearman(table)
    assert rho == pytest.approx(-1.0) and 0 <= p < 0.1
    rho, _ = spearman(table.iloc[:2])
    assert math.isnan(rho)


@pytest.mark.parametrize(
    "prob, gt, word",
    [
        (np.zeros((4, 4, 5), np.float32), None, "shape"),
        (np.full((4, 4, 4), 1.5, np.float32), None, r"\[0, 1\]"),
        (np.zeros((4, 4, 4), np.uint8), None, "floating"),
        (np.zeros((4, 4, 4), np.float32), np.zeros((4, 4, 3), np.uint8), "ground truth"),
    ],
)
def test_bad_input_names_the_subject(prob, gt, word):
    seg = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(InputError, match=f"im7.*{word}|{word}.*im7"):
        lesion_table(seg, prob, (1.0, 1.0, 1.0), gt, "im7")


def test_lesions_in_a_one_voxel_wide_box_are_counted():
    # Two one-voxel lesions on successive-but-one slices: their bounding box is 1x1x3, a
    # shape on which cc3d 4.1's boolean path failed (a demo run stopped on it).
    seg = np.ones((5, 5, 5), np.uint8)
    seg[2, 2, 1] = seg[2, 2, 3] = 2
    prob = np.where(seg == 2, 0.8, 0.0).astype(np.float32)
    table = lesion_table(seg, prob, (1.0, 1.0, 1.0), None, "im0")
    assert table["voxels"].tolist() == [1, 1]


# ------------------------------------------------------------- held-out lesions scored


def test_fill_status_marks_a_lesion_touching_tumor_tp_and_one_apart_fp():
    seg, prob = two_lesions()
    gt = np.zeros(seg.shape, np.uint8)
    gt[3, 3, 2] = 2  # one voxel of lesion 1
    gt[7:9, 7:10, 2] = 2  # beside lesion 2, not on it
    blind = lesion_table(seg, prob, (1.0, 1.0, 1.0), None, "im0")  # as the ensemble writes it
    filled = fill_status(blind, seg, gt, "im0")
    assert filled["status"].tolist() == ["TP", "FP"]
    assert filled.drop(columns="status").equals(blind.drop(columns="status"))


def test_fill_status_numbers_lesions_as_lesion_table_does():
    """Many lesions of all shapes, some touching by a corner: fill_status gives every
    lesion the status lesion_table gives it with the labels."""
    rng = np.random.default_rng(5)
    seg = np.where(rng.random((20, 18, 9)) < 0.25, 2, 1).astype(np.uint8)
    gt = np.where(rng.random(seg.shape) < 0.05, 2, 1).astype(np.uint8)
    prob = rng.random(seg.shape).astype(np.float32)
    scored = lesion_table(seg, prob, (1.0, 1.0, 2.0), gt, "im3")
    blind = lesion_table(seg, prob, (1.0, 1.0, 2.0), None, "im3")
    other = lesion_table(seg[::-1], prob, (1.0, 1.0, 2.0), None, "im4")  # another subject in the same table
    filled = fill_status(pd.concat([other, blind], ignore_index=True), seg, gt, "im3")
    assert len(scored) > 5 and {"TP", "FP"} <= set(scored["status"])
    pd.testing.assert_frame_equal(filled.reset_index(drop=True), scored)


def test_fill_status_of_a_subject_without_lesions_is_empty():
    seg = np.ones((4, 4, 4), np.uint8)
    blind = lesion_table(seg, np.zeros(seg.shape, np.float32), (1.0, 1.0, 1.0), None, "im0")
    assert fill_status(blind, seg, seg, "im0").empty


@pytest.mark.parametrize("change", ["another segmentation", "ground truth shape"])
def test_fill_status_refuses_a_segmentation_that_is_not_the_tables(change):
    seg, prob = two_lesions()
    blind = lesion_table(seg, prob, (1.0, 1.0, 1.0), None, "im0")
    gt = np.zeros(seg.shape, np.uint8)
    if change == "another segmentation":
        seg[10, 10, 5] = 2  # a third lesion the table does not hold
    else:
        gt = gt[:, :, :3]
    with pytest.raises(InputError, match="im0"):
        fill_status(blind, seg, gt, "im0")


def test_heldout_lesions_job_scores_the_ensembles_table_from_its_files(tmp_path):
    """Through NIfTI files in a non-canonical orientation, as the ensemble writes them:
    the statuses are lesion_table's with the labels; the other columns are the table's."""
    from liverseg.io import load_nifti, save_in_reference_space, save_nifti, write_tsv
    from liverseg.workflow.jobs import heldout_lesions_job

    ensemble, labels = tmp_path / "ensemble", tmp_path / "labels"
    seg, prob = two_lesions()
    gt = np.zeros(seg.shape, np.uint8)
    gt[8, 9, 3] = 2  # on lesion 2 only
    # An LPS image (x and y flipped): the files hold the volumes flipped, load_nifti undoes it.
    save_nifti(tmp_path / "im1.nii.gz", np.zeros(seg.shape, np.float32), np.diag([-1.0, -1.0, 2.0, 1.0]))
    assert not np.array_equal(load_nifti(tmp_path / "im1.nii.gz").affine, np.diag([-1.0, -1.0, 2.0, 1.0]))
    save_in_reference_space(ensemble / "im1.nii.gz", seg, tmp_path / "im1.nii.gz")
    save_in_reference_space(labels / "lb1.nii.gz", gt, tmp_path / "im1.nii.gz")
    empty = np.ones(seg.shape, np.uint8)  # an image without a predicted lesion
    save_in_reference_space(ensemble / "im2.nii.gz", empty, tmp_path / "im1.nii.gz")
    save_in_reference_space(labels / "lb2.nii.gz", empty, tmp_path / "im1.nii.gz")
    write_tsv(ensemble / "lesions.tsv", lesion_table(seg, prob, (1.0, 1.0, 2.0), None, "im1"))

    heldout_lesions_job(ensemble, labels, tmp_path / "heldout.tsv", tmp_path / "truth.tsv")
    table = read_lesion_table(tmp_path / "heldout.tsv")
    expected = lesion_table(seg, prob, (1.0, 1.0, 2.0), gt, "im1")
    assert table["status"].tolist() == expected["status"].tolist() == ["FP", "TP"]
    assert table[["lesion", "voxels"]].equals(expected[["lesion", "voxels"]])
    assert table["uncertainty"].to_numpy() == pytest.approx(expected["uncertainty"].to_numpy())
    truth = pd.read_csv(tmp_path / "truth.tsv", sep="\t")
    assert truth["subject"].tolist() == ["im1"] and truth["detected"].tolist() == [True]
    assert truth["volume_mm3"].tolist() == [2.0]  # one voxel of 1 x 1 x 2 mm, the label file's spacing


def test_truth_lesions_are_detected_by_any_predicted_tumor_voxel_inside():
    """The TP rule seen from the labels: a true lesion is detected when a predicted tumour
    voxel falls inside it; liver predicted on it, or tumour beside it, does not count."""
    truth, _ = two_lesions()  # here the ground truth: lesions of 4 and 6 voxels
    seg = np.ones(truth.shape, np.uint8)
    seg[3, 3, 2] = 2  # inside lesion 1
    seg[7:9, 7:10, 2] = 2  # beside lesion 2 (the slice below it)
    table = truth_lesion_table(seg, truth, (1.0, 1.0, 2.0), "im0")
    assert list(table.columns) == TRUTH_COLUMNS
    assert table["detected"].tolist() == [True, False]
    assert table["volume_mm3"].tolist() == [8.0, 12.0]
    assert table["diameter_mm"].to_numpy() == pytest.approx(np.cbrt(6 * np.array([8.0, 12.0]) / math.pi))
    assert truth_lesion_table(seg, np.ones_like(truth), (1.0, 1.0, 2.0), "im0").empty


def test_detection_recall_counts_by_diameter():
    truth = pd.DataFrame({"diameter_mm": [4.0, 9.9, 10.0, 15.0, 30.0], "detected": [False, True, True, False, True]})
    assert detection_recall(truth) == (5, 3, 0.6)
    assert detection_recall(truth, 10.0) == (3, 2, pytest.approx(2 / 3))
    assert detection_recall(truth, 0.0, 10.0) == (2, 1, 0.5)
    lesions, found, recall = detection_recall(truth, 50.0)
    assert (lesions, found) == (0, 0) and math.isnan(recall)


def test_truth_lesions_of_a_segmentation_of_another_shape_name_the_subject():
    truth, _ = two_lesions()
    with pytest.raises(
        InputError, match=r"im7: ground truth shape \(12, 12, 6\) differs from segmentation \(12, 12, 3\)"
    ):
        truth_lesion_table(truth[:, :, :3], truth, (1.0, 1.0, 1.0), "im7")
