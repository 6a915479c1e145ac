"""Lesion-wise uncertainty (paper eq. 1), TP/FP status, volumes, AUROC and Spearman."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from liverseg.errors import InputError
from liverseg.lesions import COLUMNS, lesion_table, spearman, uncertainty_auroc


def two_lesions():
    seg = np.zeros((12, 12, 6), np.uint8)
    seg[1:11, 1:11, 1:5] = 1
    seg[2:4, 2:4, 2] = 2  # lesion 1: 4 voxels
    seg[7:9, 7:10, 3] = 2  # lesion 2: 6 voxels
    prob = np.zeros(seg.shape, np.float32)
    prob[2:4, 2:4, 2] = [[0.9, 0.8], [0.7, 0.6]]
    prob[7:9, 7:10, 3] = 0.25
    return seg, prob


def test_uncertainty_is_one_minus_the_mean_tumour_probability():
    seg, prob = two_lesions()
    table = lesion_table(seg, prob, (1.0, 1.0, 1.0), None, "im0")
    assert list(table.columns) == COLUMNS
    assert table["lesion"].tolist() == [1, 2]
    assert table["voxels"].tolist() == [4, 6]
    assert table["uncertainty"].tolist() == pytest.approx([1 - 0.75, 1 - 0.25], abs=1e-7)
    assert table["subject"].tolist() == ["im0", "im0"]
    assert table["status"].tolist() == ["", ""]  # no ground truth


def test_status_is_tp_on_any_overlap_with_the_ground_truth_tumour():
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
        {"uncertainty": [0.5, 0.3, 0.1, 0.3, 0.2, 0.9], "status": ["FP", "FP", "TP", "TP", "TP", ""]}
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
