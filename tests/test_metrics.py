"""The challenge metrics against the reference libraries (medpy, DeepMind surface-distance)."""

from __future__ import annotations

import math

import medpy.metric.binary as medpy_binary
import numpy as np
import pytest
import surface_distance
from surface_distance import lookup_tables

from liverseg.errors import InputError
from liverseg.metrics import (
    CHALLENGE_METRICS,
    METRIC_KEYS,
    _directed_distances,
    _surfel_area_table,
    burden_rmse,
    dice,
    region_metrics,
    subject_metrics,
    tumor_burden,
)

TOLERANCE_MM = 5.0  # the challenge's surface-Dice tolerance

# surface-distance 0.1 imports from deprecated scipy namespaces
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:surface_distance")


def ellipsoid(shape, center, axes):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / a) ** 2 for g, c, a in zip(grid, center, axes)) <= 1.0


def labelled_pair(shape=(48, 40, 14), seed=0):
    """A liver-like ellipsoid with tumours, and a prediction that moves, grows and misses parts."""
    rng = np.random.default_rng(seed)
    c = np.array(shape) / 2
    gt = ellipsoid(shape, c, (16, 13, 5)).astype(np.uint8)
    gt[ellipsoid(shape, c + (-5, 3, 0), (4, 3, 2))] = 2
    gt[ellipsoid(shape, c + (6, -4, 1), (2, 2, 1))] = 2
    pred = ellipsoid(shape, c + (1, -1, 0), (15, 14, 5)).astype(np.uint8)
    pred[ellipsoid(shape, c + (-4, 3, 0), (4, 4, 2))] = 2
    pred[2:4, 2:5, 0:2] = 2  # a far false positive touching the volume's faces
    flip = rng.random(shape) < 0.02  # rough borders
    pred[flip & (pred == 0) & (gt > 0)] = 1
    return gt, pred


def reference(gt_mask, pred_mask, spacing, tolerance):
    """The five region metrics from medpy and surface-distance, as the challenge defines them."""
    distances = surface_distance.compute_surface_distances(gt_mask, pred_mask, spacing)
    return dict(
        dice=medpy_binary.dc(pred_mask, gt_mask),
        surface_dice=surface_distance.compute_surface_dice_at_tolerance(distances, tolerance),
        hd=medpy_binary.hd(pred_mask, gt_mask, spacing),
        hd95=medpy_binary.hd95(pred_mask, gt_mask, spacing),
        # the challenge (medpy < 0.5) averages the two directed means; medpy 0.5 pools them
        assd=(medpy_binary.asd(pred_mask, gt_mask, spacing) + medpy_binary.asd(gt_mask, pred_mask, spacing)) / 2,
    )


@pytest.mark.parametrize(
    "spacing, tolerance, seed",
    [
        ((0.8, 0.8, 3.0), 5.0, 0),
        ((1.0, 1.0, 1.0), 2.0, 1),
        ((0.7, 1.3, 2.5), 5.0, 2),
        ((1.4, 1.4, 4.6), 1.0, 3),
    ],
)
def test_subject_metrics_agree_with_medpy_and_surface_distance(spacing, tolerance, seed):
    gt, pred = labelled_pair(seed=seed)
    ours = subject_metrics(gt, pred, spacing, tolerance_mm=tolerance)
    for region, gt_mask, pred_mask in [("liver", gt > 0, pred > 0), ("tumor", gt == 2, pred == 2)]:
        ref = reference(gt_mask, pred_mask, spacing, tolerance)
        for name, value in ref.items():
            assert ours[f"{region}_{name}"] == pytest.approx(value, rel=1e-4, abs=1e-9), f"{region}_{name}"


def test_far_and_near_distances_both_exact():
    # a prediction with one surface a voxel away and one blob far beyond the scan radius
    shape = (30, 30, 12)
    gt = np.zeros(shape, bool)
    gt[5:15, 5:15, 3:8] = True
    pred = np.zeros(shape, bool)
    pred[6:16, 5:15, 3:8] = True
    pred[26:29, 26:29, 9:11] = True
    spacing = (0.9, 0.9, 2.0)
    ours = region_metrics(gt, pred, spacing, 3.0)
    ref = reference(gt, pred, spacing, 3.0)
    assert ours == pytest.approx(ref, rel=1e-9)
    assert ours["hd"] > 10  # the far blob, beyond the offset scan, sets the Hausdorff distance


def test_directed_distances_match_brute_force():
    rng = np.random.default_rng(5)
    spacing = np.array([0.8, 1.1, 3.0])
    src = np.zeros((40, 36, 18), bool)
    dst = np.zeros_like(src)
    # the margin rule: points at least 6 voxels in-plane, 2 slices from the faces
    src[6:-6, 6:-6, 2:-2] = rng.random((28, 24, 14)) < 0.01
    dst[6:-6, 6:-6, 2:-2] = rng.random((28, 24, 14)) < 0.003
    got = _directed_distances(src, dst, spacing)
    a, b = np.argwhere(src) * spacing, np.argwhere(dst) * spacing
    brute = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(got, brute, rtol=1e-12)


def test_surface_dice_counts_a_surface_exactly_at_the_tolerance():
    # isotropic 1 mm, prediction shifted by exactly 5 voxels: distances of exactly 5 mm count
    gt = np.zeros((40, 20, 20), bool)
    gt[5:15, 5:15, 5:15] = True
    pred = np.roll(gt, 5, axis=0)
    ours = region_metrics(gt, pred, (1, 1, 1), 5.0)
    distances = surface_distance.compute_surface_distances(gt, pred, (1, 1, 1))
    assert ours["surface_dice"] == pytest.approx(surface_distance.compute_surface_dice_at_tolerance(distances, 5.0))
    assert ours["surface_dice"] == pytest.approx(1.0)
    assert region_metrics(gt, pred, (1, 1, 1), 4.99)["surface_dice"] < 1.0


def test_keys_in_order_and_floats():
    gt, pred = labelled_pair()
    out = subject_metrics(gt, pred, (0.8, 0.8, 3.0), TOLERANCE_MM)
    assert tuple(out) == METRIC_KEYS
    assert all(isinstance(v, float) for v in out.values())
    assert {m.column for m in CHALLENGE_METRICS} <= set(METRIC_KEYS)


@pytest.mark.parametrize(
    "gt, pred, expected",
    [
        ([0, 0, 0, 0], [0, 0, 0, 0], 1.0),  # nothing to find, none found (the challenge's rule)
        ([1, 1, 0, 0], [0, 0, 0, 0], 0.0),
        ([0, 0, 0, 0], [0, 1, 0, 0], 0.0),
        ([1, 1, 0, 0], [0, 1, 1, 0], 0.5),
    ],
)
def test_dice_and_its_empty_mask_rule(gt, pred, expected):
    """The one Dice: what region_metrics reports and training's validation uses."""
    gt, pred = (np.array(m, dtype=bool).reshape(1, 1, 4) for m in (gt, pred))
    assert dice(gt, pred) == expected == region_metrics(gt, pred, (1.0, 1.0, 1.0), TOLERANCE_MM)["dice"]


def test_identical_volumes_score_perfectly():
    gt, _ = labelled_pair()
    out = subject_metrics(gt, gt.copy(), (0.8, 0.8, 3.0), TOLERANCE_MM)
    for region in ("liver", "tumor"):
        assert out[f"{region}_dice"] == 1.0 and out[f"{region}_surface_dice"] == 1.0
        assert out[f"{region}_hd"] == out[f"{region}_hd95"] == out[f"{region}_assd"] == 0.0
    assert out["tumor_burden_error"] == 0.0


def test_empty_masks():
    shape = (20, 20, 6)
    liver_only = np.zeros(shape, np.uint8)
    liver_only[4:16, 4:16, 1:5] = 1
    with_tumor = liver_only.copy()
    with_tumor[8:10, 8:10, 2:4] = 2

    both_empty = subject_metrics(liver_only, liver_only, (1, 1, 2), TOLERANCE_MM)
    assert (both_empty["tumor_dice"], both_empty["tumor_surface_dice"]) == (1.0, 1.0)
    assert both_empty["tumor_hd"] == both_empty["tumor_hd95"] == both_empty["tumor_assd"] == 0.0

    for gt, pred in [(with_tumor, liver_only), (liver_only, with_tumor)]:  # missed, or invented
        one_empty = subject_metrics(gt, pred, (1, 1, 2), TOLERANCE_MM)
        assert (one_empty["tumor_dice"], one_empty["tumor_surface_dice"]) == (0.0, 0.0)
        assert all(math.isnan(one_empty[f"tumor_{k}"]) for k in ("hd", "hd95", "assd"))
        assert one_empty["liver_dice"] == 1.0

    nothing = np.zeros(shape, np.uint8)
    empty_pred = subject_metrics(with_tumor, nothing, (1, 1, 2), TOLERANCE_MM)
    assert empty_pred["liver_dice"] == 0.0 and math.isnan(empty_pred["liver_hd"])
    assert empty_pred["tumor_burden_pred"] == 0.0  # no liver: burden 0 by definition
    all_empty = subject_metrics(nothing, nothing, (1, 1, 2), TOLERANCE_MM)
    assert all_empty["liver_dice"] == 1.0 and all_empty["tumor_burden_error"] == 0.0


def test_tumor_burden():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:5] = 1  # 500 liver voxels, of which 50 tumour
    labels[0] = 2
    assert tumor_burden(labels) == pytest.approx(100 / 500)
    pred = labels.copy()
    pred[1] = 2  # 200 tumour of 500
    out = subject_metrics(labels, pred, (1, 1, 1), TOLERANCE_MM)
    assert out["tumor_burden_true"] == pytest.approx(0.2)
    assert out["tumor_burden_pred"] == pytest.approx(0.4)
    assert out["tumor_burden_error"] == pytest.approx(0.2)
    assert tumor_burden(np.zeros((3, 3, 3))) == 0.0


def test_burden_rmse():
    assert burden_rmse([0.3, 0.4]) == pytest.approx(math.sqrt((0.09 + 0.16) / 2))
    assert burden_rmse([0.1, float("nan")]) == pytest.approx(0.1)
    assert math.isnan(burden_rmse([]))


def test_accepts_float_and_integer_label_volumes():
    gt, pred = labelled_pair()
    expected = subject_metrics(gt, pred, (0.8, 0.8, 3.0), TOLERANCE_MM)
    got = subject_metrics(gt.astype(np.float32), pred.astype(np.int16), (0.8, 0.8, 3.0), TOLERANCE_MM)
    assert got == expected


@pytest.mark.parametrize(
    "gt, pred, spacing, message",
    [
        (
            np.full((4, 4, 4), 3, np.uint8),
            np.zeros((4, 4, 4), np.uint8),
            (1, 1, 1),
            "ground truth: labels outside",
        ),
        (np.zeros((4, 4, 4)), np.full((4, 4, 4), 1.5), (1, 1, 1), "prediction: labels outside"),
        (
            np.zeros((4, 4, 4), np.int8) - 1,
            np.zeros((4, 4, 4), np.uint8),
            (1, 1, 1),
            "labels outside",
        ),
        (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8), (1, 1, 1), "shape"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), (1, 1), "3D"),
        (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), (1, 0, 1), "spacing"),
        (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), (1, 1), "spacing"),
    ],
)
def test_bad_input_raises_input_error(gt, pred, spacing, message):
    with pytest.raises(InputError, match=message):
        subject_metrics(gt, pred, spacing, TOLERANCE_MM)


@pytest.mark.parametrize("tolerance", [-1.0, float("nan"), "5"])
def test_bad_tolerance(tolerance):
    gt, pred = labelled_pair()
    with pytest.raises(InputError, match="tolerance_mm"):
        subject_metrics(gt, pred, (1, 1, 1), tolerance_mm=tolerance)


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 3.0), (1.0, 1.0, 1.0), (0.684, 1.41, 4.6)])
def test_surfel_areas_equal_surface_distance_table(spacing):
    # Equal to the last bit or two: numpy's norm takes other SIMD paths on AVX-512 than on
    # AVX2 machines, and there the two tables differ by one ulp in some entries.
    np.testing.assert_array_max_ulp(
        _surfel_area_table(spacing),
        lookup_tables.create_table_neighbour_code_to_surface_area(spacing),
        maxulp=2,
    )
