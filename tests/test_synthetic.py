"""The synthetic ATLAS-like cohort: layout, phases, labels, grids, contrast, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from liverseg.errors import InputError
from liverseg.io import load_nifti, spacing_of
from liverseg.synthetic import (
    ATLAS_PHASE_COUNTS,
    MIN_SLICES,
    acquisition,
    draw_subject,
    grid_at,
    phase_counts,
    write_synthetic_cohort,
)

SCALE = 8.0  # tiny grids: every test here runs in seconds


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cohort(out, subjects=5, heldout=2, seed=3, scale=SCALE)
    return out


def test_phase_counts_match_atlas_and_scale_by_largest_remainder():
    assert phase_counts(60) == ATLAS_PHASE_COUNTS
    # quotas for 12: 6.6, 2.0, 1.6, 1.4, 0.4 -> floors 6, 2, 1, 1, 0; two left go to 0.6, 0.6
    assert phase_counts(12) == {
        "arterial": 7,
        "portal": 2,
        "delayed": 2,
        "unkown": 1,
        "no contrast agent": 0,
    }
    for n in (1, 7, 30, 61, 120):
        assert sum(phase_counts(n).values()) == n
    assert phase_counts(120) == {p: 2 * c for p, c in ATLAS_PHASE_COUNTS.items()}


def test_layout_and_patient_info(cohort):
    train, test = cohort / "train", cohort / "test"
    assert sorted(p.name for p in (train / "imagesTr").iterdir()) == [f"im{i}.nii.gz" for i in range(5)]
    assert sorted(p.name for p in (train / "labelsTr").iterdir()) == [f"lb{i}.nii.gz" for i in range(5)]
    assert sorted(p.name for p in (test / "imagesTs").iterdir()) == ["im5.nii.gz", "im6.nii.gz"]
    assert sorted(p.name for p in (cohort / "test_labels").iterdir()) == [
        "lb5.nii.gz",
        "lb6.nii.gz",
    ]
    # Held-out labels never sit where training code looks for labels.
    assert not list(train.rglob("lb5*")) and not list(test.rglob("lb*"))

    info = json.loads((train / "patient_info_train.json").read_text())
    assert list(info) == [f"im{i}" for i in range(5)]
    for entry in info.values():
        assert set(entry) == {"contrast_phase", "machine", "sequence", "date"}
    phases = [e["contrast_phase"] for e in info.values()]
    assert sorted(phases) == sorted(p for p, c in phase_counts(5).items() for _ in range(c))
    assert set(json.loads((test / "patient_info_test.json").read_text())) == {"im5", "im6"}
    dataset = json.loads((train / "dataset.json").read_text())
    assert dataset["numTraining"] == 5 and dataset["labels"]["2"] == "tumour"


def test_volumes_read_back_with_the_slice_axis_last(cohort):
    for i in range(5):
        img = load_nifti(cohort / "train" / "imagesTr" / f"im{i}.nii.gz")
        lab = load_nifti(cohort / "train" / "labelsTr" / f"lb{i}.nii.gz")
        assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
        assert img.shape == lab.shape and np.allclose(img.affine, lab.affine)
        sx, sy, sz = spacing_of(img)
        assert sx == pytest.approx(sy)
        assert 0.68 * SCALE - 1e-3 <= sx <= 1.41 * SCALE + 1e-3
        assert 2.0 * SCALE - 1e-3 <= sz <= 4.6 * SCALE + 1e-3
        assert img.shape[2] >= MIN_SLICES and img.shape[0] <= 512 / SCALE + 1
        assert set(np.unique(np.asarray(lab.dataobj))) <= {0, 1, 2}


def test_acquisitions_span_the_atlas_ranges_and_coarsen_with_scale():
    acqs = [acquisition(np.random.default_rng(i)) for i in range(300)]
    inplane = np.array([a.inplane for a in acqs])
    thickness = np.array([a.thickness for a in acqs])
    slices = np.array([a.slices for a in acqs])
    assert inplane.min() >= 0.68 and inplane.max() <= 1.41 and np.ptp(inplane) > 0.6
    assert thickness.min() >= 2.0 and thickness.max() <= 4.6 and np.ptp(thickness) > 2.2
    assert slices.min() >= 44 and slices.max() <= 136
    assert max(max(a.matrix) for a in acqs) == 512
    for a in acqs[:20]:
        g = grid_at(a, 4.0)
        assert g.spacing[0] == pytest.approx(4 * a.inplane, abs=1e-4)
        assert g.spacing[2] == pytest.approx(4 * a.thickness, abs=1e-4)
        assert g.shape[0] == round(a.matrix[0] / 4) and g.shape[2] == max(round(a.slices / 4), MIN_SLICES)
        # The field of view is kept (up to rounding of the matrix).
        assert g.shape[0] * g.spacing[0] == pytest.approx(a.fov[0], rel=0.03)


def _subject_with_tumor(phase: str, seed: int = 0, scale: float = 4.0):
    for index in range(20):
        s = draw_subject(seed, index, phase, scale)
        if (s.label == 2).sum() >= 10:
            return s
    raise AssertionError("no subject with a tumour in 20")


def test_tumors_lie_inside_the_liver():
    s = _subject_with_tumor("portal")
    liver, tumor = s.label == 1, s.label == 2
    voxel_ml = float(np.prod(s.spacing)) / 1000
    assert 1000 <= (liver | tumor).sum() * voxel_ml <= 2600  # ~1.2-2.2 L livers
    lesions, n = ndimage.label(tumor, structure=np.ones((3, 3, 3)))
    assert n >= 1
    for k in range(1, n + 1):
        ring = ndimage.binary_dilation(lesions == k, structure=np.ones((3, 3, 3))) & ~tumor
        # A lesion's neighbourhood is liver (or another lesion), never only background.
        assert liver[ring].mean() > 0.3


def test_every_subject_has_tumors_from_nodules_to_masses():
    """As every ATLAS patient has an HCC: 1 to 8 lesions per subject, every label map holds
    tumour, and the cohort's lesions range from nodules of a few millilitres to masses."""
    volumes_ml = []
    for index in range(24):
        s = draw_subject(3, index, "arterial", 3.0)
        lesions, n = ndimage.label(s.label == 2, structure=np.ones((3, 3, 3)))
        assert 1 <= n <= 8, f"im{index}: {n} lesions"
        volumes_ml += list(np.bincount(lesions.ravel())[1:] * float(np.prod(s.spacing)) / 1000)
    assert min(volumes_ml) < 2 and max(volumes_ml) > 100


@pytest.mark.parametrize("phase, brighter", [("arterial", True), ("portal", False), ("delayed", False)])
def test_tumor_contrast_follows_the_phase(phase, brighter):
    ratios = []
    for index in range(12):
        s = draw_subject(0, index, phase, 4.0)
        if (s.label == 2).sum() >= 10:
            ratios.append(s.image[s.label == 2].mean() / s.image[s.label == 1].mean())
    assert len(ratios) >= 3
    if brighter:
        assert np.mean(ratios) > 1.1 and min(ratios) > 1.0
    else:
        assert np.mean(ratios) < 0.9 and max(ratios) < 1.0


def test_deterministic_from_the_seed(tmp_path):
    a, b = draw_subject(5, 2, "portal", SCALE), draw_subject(5, 2, "portal", SCALE)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    c = draw_subject(6, 2, "portal", SCALE)
    assert not np.array_equal(a.image, c.image)
    # Whole cohorts: the same arguments give the same arrays and metadata.
    for out in (tmp_path / "one", tmp_path / "two"):
        write_synthetic_cohort(out, subjects=2, heldout=1, seed=9, scale=SCALE)
    for rel in (
        "train/imagesTr/im1.nii.gz",
        "train/labelsTr/lb0.nii.gz",
        "test/imagesTs/im2.nii.gz",
        "test_labels/lb2.nii.gz",
    ):
        one, two = (np.asarray(load_nifti(tmp_path / d / rel).dataobj) for d in ("one", "two"))
        assert np.array_equal(one, two), rel
    assert (tmp_path / "one/train/patient_info_train.json").read_text() == (
        tmp_path / "two/train/patient_info_train.json"
    ).read_text()


def test_anatomy_is_independent_of_phase_grid_and_cohort_size():
    arterial, portal = draw_subject(4, 3, "arterial", SCALE), draw_subject(4, 3, "portal", SCALE)
    assert np.array_equal(arterial.label, portal.label)
    assert not np.array_equal(arterial.image, portal.image)
    # The same liver on a grid twice as fine: volumes in mL agree.
    fine = draw_subject(4, 3, "portal", SCALE / 2)
    vol = lambda s: float((s.label > 0).sum() * np.prod(s.spacing))  # noqa: E731
    assert vol(fine) == pytest.approx(vol(portal), rel=0.1)


def test_subject_does_not_depend_on_cohort_size(tmp_path):
    write_synthetic_cohort(tmp_path / "small", subjects=2, heldout=0, seed=1, scale=SCALE)
    write_synthetic_cohort(tmp_path / "large", subjects=4, heldout=0, seed=1, scale=SCALE)
    small, large = (
        np.asarray(load_nifti(tmp_path / size / "train/labelsTr/lb1.nii.gz").dataobj) for size in ("small", "large")
    )
    assert np.array_equal(small, large)
    assert not (tmp_path / "small" / "test").exists()


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"subjects": 0}, "subjects"),
        ({"heldout": -1}, "heldout"),
        ({"seed": -2}, "seed"),
        ({"scale": 0.5}, "scale"),
        ({"scale": float("nan")}, "scale"),
    ],
)
def test_bad_arguments_are_reported(tmp_path, kwargs, word):
    with pytest.raises(InputError, match=word):
        write_synthetic_cohort(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_unknown_phase_is_reported():
    with pytest.raises(InputError, match="venous"):
        draw_subject(0, 0, "venous", SCALE)
