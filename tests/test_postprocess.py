"""Post-processing (paper section 2.5): each step on crafted volumes, and agreement with
the plain scipy.ndimage composition of the same steps on random volumes."""

from __future__ import annotations

import numpy as np
import postprocess_scipy  # benchmarks/, on pytest's pythonpath
import pytest
from scipy import ndimage

from liverseg.errors import InputError
from liverseg.postprocess import (
    aggregate_dual_binary,
    postprocess_dual_binary,
    postprocess_multiclass,
    structuring_element,
)

ISO = (1.0, 1.0, 1.0)


def liver_block(shape=(30, 30, 12)) -> np.ndarray:
    seg = np.zeros(shape, np.uint8)
    seg[5:25, 5:25, 2:10] = 1
    return seg


# --------------------------------------------------------------------------- elements


def test_structuring_element_is_an_anisotropic_ellipsoid():
    se = structuring_element(3.0, (1.0, 1.0, 2.5))
    assert se.shape == (7, 7, 3)
    # In the centre slice: the disc of radius 3 voxels (29 offsets with i*i + j*j <= 9).
    assert se[:, :, 1].sum() == 29 and se[3, 0, 1] and not se[0, 0, 1]
    # One slice away (2.5 mm): i*i + j*j <= 9 - 6.25, the 3x3 square.
    assert se[:, :, 0].sum() == 9 and se[2:5, 2:5, 0].all()
    assert np.array_equal(se, se[::-1, ::-1, ::-1])


def test_structuring_element_keeps_the_centre_along_thick_axes():
    se = structuring_element(2.0, (1.0, 1.0, 4.0))
    assert se.shape == (5, 5, 1)
    assert structuring_element(0.5, (1.0, 1.0, 3.0)).tolist() == [[[True]]]
    assert structuring_element(0.0, ISO).tolist() == [[[True]]]


# --------------------------------------------------------------------------- step 1


def test_small_second_liver_component_is_removed():
    seg = liver_block()
    seg[27:29, 27:29, 4:6] = 1  # an island
    out = postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=2)
    assert out[27:29, 27:29, 4:6].sum() == 0 and (out == 1).sum() == (liver_block() == 1).sum()
    dual = postprocess_dual_binary(seg > 0, np.zeros(seg.shape, bool), ISO, closing_mm=2)
    assert np.array_equal(dual, liver_block())


def test_liver_hole_is_filled_and_a_tumor_in_it_stays_tumor():
    seg = liver_block()
    seg[10:14, 10:14, 4:7] = 0  # an enclosed cavity
    seg[18:20, 18:20, 5] = 0  # another one, around a tumour
    seg[18, 18, 5] = 2
    out = postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=0)
    assert (out[10:14, 10:14, 4:7] == 1).all()
    assert out[18, 18, 5] == 2 and out[19, 19, 5] == 1
    assert (out > 0).sum() == (liver_block() > 0).sum()


def test_a_notch_open_to_the_outside_is_not_a_hole():
    seg = liver_block()
    seg[10:14, 10:14, 2:7] = 0  # opens through the bottom face
    out = postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=0)
    assert (out[10:14, 10:14, 2:7] == 0).all()


def test_a_tumor_splitting_the_liver_keeps_both_halves():
    seg = liver_block()
    seg[14:16, 5:25, 2:10] = 2  # a slab of tumour across the whole liver
    out = postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=0)
    assert np.array_equal(out, seg)


# --------------------------------------------------------------------------- step 2


def test_tumor_far_outside_the_liver_is_removed_and_touching_one_kept():
    seg = liver_block((40, 30, 12))
    seg[25:27, 10:12, 4:6] = 2  # touches the liver face at x = 24
    seg[29:31, 10:12, 4:6] = 2  # 4 voxel gap (5 mm between centres): within 5 mm
    seg[35:37, 10:12, 4:6] = 2  # 10 voxels away
    out = postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=0)
    assert (out[25:27, 10:12, 4:6] == 2).all()
    assert (out[29:31, 10:12, 4:6] == 2).all()
    assert (out[35:37, 10:12, 4:6] == 0).all()
    # With a smaller radius the near one goes too; the touching one never does.
    out = postprocess_multiclass(seg, ISO, dilation_mm=2, closing_mm=0)
    assert (out[25:27, 10:12, 4:6] == 2).all() and (out[29:31, 10:12, 4:6] == 0).all()
    out = postprocess_multiclass(seg, ISO, dilation_mm=0, closing_mm=0)
    assert (out[25:27, 10:12, 4:6] == 2).all()


def test_dilation_is_measured_in_millimetres():
    seg = liver_block((40, 30, 12))
    seg[29:31, 10:12, 4:6] = 2  # 5 voxels from the liver's last voxel (x = 24)
    out_fine = postprocess_multiclass(seg, (0.5, 0.5, 2.0), dilation_mm=4, closing_mm=0)  # 2.5 mm away
    out_coarse = postprocess_multiclass(seg, (2.0, 2.0, 2.0), dilation_mm=4, closing_mm=0)  # 10 mm away
    assert (out_fine == 2).sum() == 8 and (out_coarse == 2).sum() == 0


def test_dual_binary_keeps_tumor_only_inside_the_liver():
    liver = liver_block() > 0
    tumor = np.zeros(liver.shape, bool)
    tumor[20:28, 10:13, 4:6] = True  # straddles the liver face at x = 24
    out = postprocess_dual_binary(liver, tumor, ISO, closing_mm=0)
    assert (out[20:25, 10:13, 4:6] == 2).all() and (out[25:28] == 0).all()
    assert np.array_equal(out == 2, tumor & liver)


def test_raw_aggregation_keeps_the_models_outputs():
    liver = liver_block() > 0
    tumor = np.zeros(liver.shape, bool)
    tumor[10:12, 10:12, 4] = True
    tumor[27, 27, 4] = True  # outside the liver: the raw stage keeps it
    out = aggregate_dual_binary(liver, tumor)
    assert out.dtype == np.uint8
    assert out[27, 27, 4] == 2 and out[10, 10, 4] == 2 and out[6, 6, 4] == 1 and out[0, 0, 0] == 0
    assert ((out == 1) == (liver & ~tumor)).all()


# --------------------------------------------------------------------------- step 3


def test_closing_fills_a_one_voxel_gap_in_a_tumor():
    seg = liver_block()
    seg[10:16, 8:22, 3:9] = 2
    seg[10:16, 15, 3:9] = 1  # a one-voxel cut through the lesion
    out = postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=2)
    # The cut is bridged except on its rim, where a ball can sit outside the lesion.
    assert (out[11:15, 15, 4:8] == 2).all()
    assert (out[10:16, 8:22, 3:9] == 2).sum() == seg[10:16, 8:22, 3:9].size - 20
    dual = postprocess_dual_binary(seg > 0, seg == 2, ISO, closing_mm=2)
    assert np.array_equal(dual, out)
    # Without closing the cut stays.
    assert (postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=0)[10:16, 15, 3:9] == 1).all()


def test_closing_adds_tumor_only_inside_the_liver():
    seg = liver_block()
    # A lesion on the liver's face (x = 24) with a one-voxel notch open to the outside.
    seg[19:25, 8:22, 3:9] = 2
    seg[22:25, 15, 3:9] = 0  # notch: background
    seg[19:22, 15, 3:9] = 1  # the cut continues inside the liver
    out = postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=2)
    assert (out[22:25, 15, 3:9] == 0).all()  # background stays background
    assert (out[20:22, 15, 4:8] == 2).all()  # liver in the cut became tumour


def test_closing_does_not_bridge_thick_slices():
    seg = liver_block()
    seg[8:16, 8:16, 3] = 2
    seg[8:16, 8:16, 5] = 2  # one slice of liver between two flat lesions
    out = postprocess_multiclass(seg, (1.0, 1.0, 5.0), dilation_mm=5, closing_mm=3)  # 10 mm apart
    assert (out[8:16, 8:16, 4] == 1).all()
    out = postprocess_multiclass(seg, ISO, dilation_mm=5, closing_mm=3)  # 2 mm apart
    assert (out[9:15, 9:15, 4] == 2).all()


# --------------------------------------------------------------------------- edge cases


def test_empty_and_liverless_inputs():
    empty = np.zeros((8, 8, 4), np.uint8)
    assert not postprocess_multiclass(empty, ISO, dilation_mm=5, closing_mm=3).any()
    only_tumor = empty.copy()
    only_tumor[2:4, 2:4, 1:3] = 2
    assert not postprocess_multiclass(only_tumor, ISO, dilation_mm=5, closing_mm=3).any()
    assert not postprocess_dual_binary(empty > 0, only_tumor > 0, ISO, closing_mm=3).any()


def test_closing_at_the_array_edge_behaves_as_on_an_unbounded_grid():
    seg = np.ones((12, 16, 8), np.uint8)
    seg[0:6, 2:14, 0:5] = 2  # a lesion on two faces of the array
    seg[0:6, 8, 0:5] = 1  # cut through
    out = postprocess_multiclass(seg, ISO, dilation_mm=3, closing_mm=2)
    # Nothing eroded at the edges (scipy's closing would, with its zero border) ...
    assert (out[seg == 2] == 2).all()
    # ... and the cut is bridged inside, not on the rim, the array faces included.
    cut = out[0:6, 8, 0:5] == 2
    assert cut[1:5, 1:4].all() and cut.sum() == 12


@pytest.mark.parametrize(
    "call, word",
    [
        (
            lambda: postprocess_multiclass(np.full((4, 4, 4), 3, np.uint8), ISO, dilation_mm=1, closing_mm=1),
            "labels",
        ),
        (
            lambda: postprocess_multiclass(np.zeros((4, 4), np.uint8), ISO, dilation_mm=1, closing_mm=1),
            "3D",
        ),
        (
            lambda: postprocess_multiclass(np.zeros((4, 4, 4), np.uint8), (1, 1), dilation_mm=1, closing_mm=1),
            "spacing",
        ),
        (
            lambda: postprocess_multiclass(np.zeros((4, 4, 4), np.uint8), ISO, dilation_mm=-1, closing_mm=1),
            "dilation_mm",
        ),
        (
            lambda: postprocess_dual_binary(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), ISO, closing_mm=1),
            "shape",
        ),
        (lambda: structuring_element(2.0, (1.0, 0.0, 1.0)), "spacing"),
    ],
)
def test_bad_input_is_reported(call, word):
    with pytest.raises(InputError, match=word):
        call()


# --------------------------------------------------------------------------- reference


def random_volumes(count: int, seed: int = 0):
    """(seg, liver, tumour, spacing, dilation_mm, closing_mm) of random blobby volumes."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        shape = tuple(int(n) for n in rng.integers(10, 26, 3))
        spacing = (float(rng.uniform(0.5, 2.0)),) * 2 + (float(rng.uniform(1.0, 5.0)),)
        liver = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) > 0.05
        tumor = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0) > 0.12
        seg = liver.astype(np.uint8)
        seg[tumor] = 2
        yield seg, liver, tumor, spacing, float(rng.uniform(0, 8)), float(rng.uniform(0, 6))


def test_matches_the_plain_scipy_composition_on_random_volumes():
    for seg, liver, tumor, spacing, dilation, closing in random_volumes(25):
        got = postprocess_multiclass(seg, spacing, dilation_mm=dilation, closing_mm=closing)
        assert np.array_equal(got, postprocess_scipy.multiclass(seg, spacing, dilation, closing))
        got = postprocess_dual_binary(liver, tumor, spacing, closing_mm=closing)
        assert np.array_equal(got, postprocess_scipy.dual_binary(liver, tumor, spacing, closing))


def test_closing_never_makes_a_lesion_of_its_own():
    """Every post-processed lesion holds a voxel the model called tumour: the closing's
    gains, confined to the liver, stay with the lesion they smooth (a gain cut off from it
    would be a lesion with a tumour probability near 0 in the uncertainty table)."""
    from liverseg.arrays import label_components

    for seg, liver, tumor, spacing, dilation, closing in random_volumes(40, seed=1):
        for out in (
            postprocess_multiclass(seg, spacing, dilation_mm=dilation, closing_mm=closing),
            postprocess_dual_binary(liver, tumor, spacing, closing_mm=closing),
        ):
            labels, n = label_components(out == 2)
            assert set(np.unique(labels[tumor & (out == 2)])) >= set(range(1, n + 1))
