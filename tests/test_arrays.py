"""The shared array helpers: bounding boxes, crops, margins, spacing checks, components."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from liverseg.arrays import bounding_box, check_spacing, crop_with_margin, label_components, radius_margin
from liverseg.errors import InputError


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int16, np.float32])
def test_bounding_box_holds_the_non_zero_voxels_of_every_volume(dtype):
    a, b = np.zeros((6, 7, 8), dtype), np.zeros((6, 7, 8), dtype)
    a[1, 2, 3] = 1
    b[4, 5, 6] = -1 if dtype in (np.int16, np.float32) else 1
    assert bounding_box(a, b) == (slice(1, 5), slice(2, 6), slice(3, 7))
    assert bounding_box(a) == (slice(1, 2), slice(2, 3), slice(3, 4))
    assert bounding_box(np.zeros_like(a)) is None


def test_bounding_box_margin_is_clipped_to_the_array():
    mask = np.zeros((6, 7, 8), bool)
    mask[1, 5, 3] = True
    assert bounding_box(mask, margin=(2, 2, 1)) == (slice(0, 4), slice(3, 7), slice(2, 5))


def test_crop_with_margin_surrounds_the_box_with_zeros():
    volume = np.arange(1, 61).reshape(3, 4, 5)
    box = (slice(1, 2), slice(0, 2), slice(2, 5))
    out = crop_with_margin(volume, box, (1, 0, 2))
    assert out.shape == (3, 2, 7)
    assert np.array_equal(out[1, :, 2:5], volume[box][0]) and out.sum() == volume[box].sum()


def test_radius_margin_holds_the_radius_plus_one_voxel():
    assert radius_margin(2.5, (1.0, 2.0, 4.0)) == [4, 3, 2]
    assert radius_margin(3.0, (1.0, 1.0, 1.0)) == [5, 5, 5]  # the slack keeps an exact radius inside


@pytest.mark.parametrize("spacing", [(1, 1), (1, 0, 1), (1, float("nan"), 1), None, "abc"])
def test_check_spacing_names_what_is_wrong(spacing):
    with pytest.raises(InputError, match="im3: spacing"):
        check_spacing(spacing, "im3: spacing")


def test_label_components_of_one_voxel_wide_masks_match_scipy():
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 3), (5, 1, 1), (1, 4, 1), (2, 1, 7), (6, 5, 4)]:
        for _ in range(20):
            mask = rng.random(shape) < 0.5
            labels, n = label_components(mask)
            expected, m = ndimage.label(mask, structure=np.ones((3, 3, 3)))
            assert n == m and np.array_equal(labels > 0, mask)
            # the same partition: each of our labels is exactly one of scipy's
            pairs = {(a, b) for a, b in zip(labels[mask], expected[mask])}
            assert len(pairs) == n
