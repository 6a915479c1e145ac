"""Bounding-box analysis on crafted volumes (paper §2.3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liverseg.boxes import (
    coverage,
    patch_size_report,
    recommend_patch_sizes,
    smallest_ahnet_patch,
    subject_boxes,
)


def crafted():
    label = np.zeros((60, 50, 20), np.uint8)
    label[5:45, 10:40, 2:18] = 1  # liver box 40 x 30 x 16
    label[10:14, 12:15, 5:7] = 2  # lesion 1: 4 x 3 x 2
    label[30:40, 20:30, 8:16] = 2  # lesion 2: 10 x 10 x 8
    label[20, 35, 10] = 2  # lesion 3: one voxel
    label[21, 36, 11] = 2  # diagonal neighbour: same lesion under 26-connectivity
    return label


def test_liver_and_lesion_boxes_in_voxels_and_mm():
    rows = pd.DataFrame(subject_boxes(crafted(), (0.8, 0.8, 3.0), "im0"))
    liver = rows[rows.kind == "liver"].iloc[0]
    assert (liver.size_x, liver.size_y, liver.size_z) == (40, 30, 16)
    assert liver.size_x_mm == pytest.approx(32.0) and liver.size_z_mm == pytest.approx(48.0)
    lesions = rows[rows.kind == "lesion"].sort_values("voxels")
    assert len(lesions) == 3
    assert lesions[["size_x", "size_y", "size_z"]].values.tolist() == [
        [2, 2, 2],
        [4, 3, 2],
        [10, 10, 8],
    ]
    assert lesions.iloc[2].volume_mm3 == pytest.approx(800 * 0.8 * 0.8 * 3.0)


def test_no_lesion_subject():
    label = np.zeros((10, 10, 4), np.uint8)
    label[2:5, 2:5, 1:3] = 1
    rows = subject_boxes(label, (1, 1, 1), "im1")
    assert [r["kind"] for r in rows] == ["liver"]


@pytest.mark.parametrize(
    "extent, psp, expected",
    [
        ((200, 150, 50), 4, [256, 256, 64]),
        ((100, 60, 30), 4, [128, 128, 32]),
        ((20, 10, 5), 1, [64, 64, 32]),
        ((33, 20, 40), 1, [64, 64, 64]),
        ((20, 10, 40), 2, [32, 32, 64]),
    ],
)
def test_smallest_patch_meets_ahnet_rules(extent, psp, expected):
    from liverseg.patch_rules import check_ahnet_patch_size

    assert smallest_ahnet_patch(extent, psp) == expected
    check_ahnet_patch_size(expected, psp)  # raises if the rules are broken


def _boxes(liver_sizes, lesion_sizes):
    rows = [{"kind": "liver", "size_x": x, "size_y": y, "size_z": z} for x, y, z in liver_sizes]
    rows += [{"kind": "lesion", "size_x": x, "size_y": y, "size_z": z} for x, y, z in lesion_sizes]
    return pd.DataFrame(rows)


def test_recommendation_encloses_all_lesions_and_share_of_livers():
    livers = [(150 + i, 140, 40) for i in range(9)] + [(300, 280, 90)]  # one outlier liver
    lesions = [(20, 20, 10), (120, 90, 40), (8, 8, 4)]
    boxes = _boxes(livers, lesions)
    rec = recommend_patch_sizes(boxes, liver_coverage=0.9, lesion_coverage=0.6, psp_block_num=4)
    assert rec["multiclass"] == [256, 256, 64]  # the outlier is the 10 % left out
    assert coverage(boxes[boxes.kind == "lesion"], rec["multiclass"]) == 1.0
    assert coverage(boxes[boxes.kind == "liver"], rec["multiclass"]) == pytest.approx(0.9)
    assert rec["tumor"] == [
        128,
        128,
        32,
    ]  # 60 % of lesions: up to 20 x 20 x 10, rounded up to the rules


def test_report_gives_configured_coverage_and_resolves_auto():
    boxes = _boxes([(100, 100, 30), (200, 200, 70)], [(10, 10, 5)])
    models = {
        "a": {"network": "ahnet", "task": "multiclass", "patch_size": [128, 128, 64]},
        "b": {"network": "ahnet", "task": "tumor", "patch_size": "auto"},
    }
    report = patch_size_report(boxes, models, liver_coverage=1.0, lesion_coverage=1.0, psp_block_num=4)
    assert report["configured"]["a"]["liver_coverage"] == 0.5
    assert report["configured"]["a"]["lesion_coverage"] == 1.0
    assert report["configured"]["b"]["patch_size"] == report["recommended"]["tumor"]
