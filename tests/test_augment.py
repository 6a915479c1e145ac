"""TorchIO subjects and pipelines: orientation, task targets, padding, label integrity."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio
from conftest import phantom, write_pair

from liverseg import augment
from liverseg.errors import ConfigError, InputError
from liverseg.io import c_ordered, load_nifti

ALL_ON = {key: 1.0 for key in augment.AUGMENTATIONS}


def record(root, n: int) -> dict:
    return {
        "subject": f"im{n}",
        "image": str(root / "imagesTr" / f"im{n}.nii.gz"),
        "label": str(root / "labelsTr" / f"lb{n}.nii.gz"),
    }


@pytest.fixture
def lps_subject(tmp_path) -> dict:
    """A subject stored with flipped in-plane axes (LPS-like), so that reading it
    without reorientation would give a different array."""
    image, label = phantom(seed=3)
    affine = np.diag([-0.8, -0.8, 3.0, 1.0])
    write_pair(tmp_path, 0, image, label, affine)
    return record(tmp_path, 0)


def test_subject_arrays_match_load_nifti(lps_subject):
    subject = augment.torchio_subject(lps_subject, "multiclass")
    canonical_image = load_nifti(lps_subject["image"]).get_fdata(dtype=np.float32)
    canonical_label = np.asarray(load_nifti(lps_subject["label"]).dataobj)
    stored = nib.load(lps_subject["image"]).get_fdata(dtype=np.float32)
    assert not np.array_equal(canonical_image, stored)  # the file really is not canonical
    np.testing.assert_array_equal(subject["image"].data[0].numpy(), canonical_image)
    np.testing.assert_array_equal(subject["label"].data[0].numpy(), canonical_label)
    np.testing.assert_allclose(subject["image"].affine, load_nifti(lps_subject["image"]).affine)


@pytest.mark.parametrize(
    "task, expected",
    [
        ("multiclass", lambda lab: lab),
        ("liver", lambda lab: (lab > 0).astype(np.uint8)),
        ("tumor", lambda lab: (lab == 2).astype(np.uint8)),
    ],
)
def test_task_targets(lps_subject, task, expected):
    label = np.asarray(load_nifti(lps_subject["label"]).dataobj)
    target = augment.torchio_subject(lps_subject, task)["label"].data[0].numpy()
    np.testing.assert_array_equal(target, expected(label))
    assert len(augment.class_names(task)) == int(expected(label).max()) + 1


@pytest.mark.parametrize("stored", [np.uint8, np.int16, np.float32, np.float64])
def test_task_target_of_every_stored_dtype(stored):
    """Float label files round to their classes (1.9999999 is the tumour); every task's
    target is uint8."""
    values = np.array([0, 1, 2, 2, 1, 0], dtype=stored)
    if np.dtype(stored).kind == "f":
        values = values + np.array([0, -1e-6, 1e-6, -1e-6, 1e-6, 0])
        values = values.astype(stored)
    for task, expected in (
        ("multiclass", [0, 1, 2, 2, 1, 0]),
        ("liver", [0, 1, 1, 1, 1, 0]),
        ("tumor", [0, 0, 1, 1, 0, 0]),
    ):
        target = augment.task_target(values, task)
        assert target.dtype == np.uint8 and target.tolist() == expected


def test_torchio_subject_bad_records(tmp_path, lps_subject):
    missing = dict(lps_subject, label=str(tmp_path / "labelsTr" / "lb99.nii.gz"))
    with pytest.raises(InputError, match="lb99.nii.gz: file not found"):
        augment.torchio_subject(missing, "liver")
    with pytest.raises(InputError, match="missing key 'image'"):
        augment.torchio_subject({"subject": "im0", "label": lps_subject["label"]}, "liver")
    with pytest.raises(ConfigError, match="unknown task 'lesion'"):
        augment.torchio_subject(lps_subject, "lesion")


def test_corrupt_image_names_the_file(tmp_path, lps_subject):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(open(lps_subject["image"], "rb").read()[:200])
    subject = augment.torchio_subject(dict(lps_subject, image=str(broken)), "multiclass")
    with pytest.raises(InputError, match="broken.nii.gz"):
        subject.load()


@pytest.mark.parametrize("layout", ["fortran", "flipped", "canonical view", "c", "2d"])
def test_c_ordered_copies_any_layout(layout):
    """The plane-by-plane copy NIfTI volumes go through: equal to numpy's, C-contiguous,
    and no copy of an array that already is one."""
    base = np.random.default_rng(0).random((9, 7, 5)).astype(np.float32)
    volume = {
        "fortran": np.asfortranarray(base),
        "flipped": base[::-1, :, ::-1],
        "canonical view": np.asfortranarray(base).transpose(1, 0, 2)[:, ::-1],
        "c": base,
        "2d": np.asfortranarray(base[0]),
    }[layout]
    out = c_ordered(volume)
    assert out.flags.c_contiguous and out.dtype == volume.dtype
    assert np.array_equal(out, volume)
    assert (out is volume) == (layout == "c")


def test_evaluation_transform_normalises(lps_subject):
    subject = augment.torchio_subject(lps_subject, "multiclass")
    out = augment.evaluation_transform()(subject)
    data = out["image"].data
    assert abs(float(data.mean())) < 1e-5 and abs(float(data.std()) - 1) < 1e-5
    assert out["label"].data.dtype == augment.LABEL_DTYPE
    np.testing.assert_allclose(augment.normalise(subject["image"].data[0].numpy()), data[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("layout", ["contiguous", "flipped", "permuted"])
def test_znormalise_equals_torchio_bit_for_bit(layout):
    """ZNormalise replaces TorchIO's ZNormalization in both pipelines (a tenth of its
    time and memory); its values must stay TorchIO's exactly, whatever the tensor's
    memory layout after earlier transforms."""
    data = torch.from_numpy(np.random.default_rng(5).gamma(2.0, 50.0, (1, 37, 29, 11)).astype(np.float32))
    data = {
        "contiguous": data,
        "flipped": data.flip(1),
        "permuted": data.permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3),
    }[layout]
    ours = augment.ZNormalise()(tio.ScalarImage(tensor=data)).data
    theirs = tio.ZNormalization()(tio.ScalarImage(tensor=data)).data
    assert ours.dtype == theirs.dtype == torch.float32
    assert torch.equal(ours, theirs)


def test_znormalise_names_a_constant_image(tmp_path):
    path = tmp_path / "im0.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), path)
    with pytest.raises(InputError, match="im0.nii.gz: constant intensity"):
        augment.ZNormalise()(tio.Subject(image=tio.ScalarImage(path)))


@pytest.mark.parametrize("shape", [(40, 40, 12), (37, 29, 11), (1, 9, 4), (300, 7, 130)])
@pytest.mark.parametrize("order", [0, 1, 3])
def test_bias_field_equals_torchio_bit_for_bit(shape, order):
    """The separable bias field is TorchIO's, to the bit: odd sides (half-integer grid),
    a one-voxel side (TorchIO skips its normalisation), blocks that do not divide the
    first axis (300 x 7 x 130: 143 rows per 1 MB block)."""
    n_terms = (order + 1) * (order + 2) * (order + 3) // 6
    coefficients = list(np.random.default_rng(order).uniform(-0.5, 0.5, n_terms))
    expected = tio.BiasField.generate_bias_field(torch.zeros((1,) + shape), order, coefficients)
    field = augment.bias_field(shape, order, coefficients)
    assert field.dtype == expected.dtype == np.float32
    assert np.array_equal(field, expected)


def test_random_bias_field_equals_torchio_under_one_seed(lps_subject):
    """The same random draws and the same image as tio.RandomBiasField, label untouched."""
    subject = augment.torchio_subject(lps_subject, "multiclass")
    subject.load()
    outputs = []
    for transform in (
        augment.RandomBiasField(coefficients=0.5),
        tio.RandomBiasField(coefficients=0.5),
    ):
        torch.manual_seed(7)
        outputs.append(transform(subject))
    ours, theirs = outputs
    assert torch.equal(ours["image"].data, theirs["image"].data)
    assert not torch.equal(ours["image"].data, subject["image"].data)  # a field really was applied
    assert torch.equal(ours["label"].data, subject["label"].data)


def test_normalise_rejects_unusable_images():
    with pytest.raises(InputError, match="constant"):
        augment.normalise(np.ones((4, 4, 4)))
    with pytest.raises(InputError, match="3D"):
        augment.normalise(np.ones((4, 4)))


def test_training_transform_pads_short_volumes_and_keeps_labels(lps_subject):
    """All augmentations on: every axis reaches the patch size, the label map keeps
    exactly the task's values and stays aligned in shape with the image."""
    subject = augment.torchio_subject(lps_subject, "multiclass")  # 40 x 40 x 12
    transform = augment.training_transform(ALL_ON, (32, 32, 32))
    torch.manual_seed(0)
    for _ in range(4):
        out = transform(subject)
        assert out["image"].shape == out["label"].shape
        assert out["image"].spatial_shape == (40, 40, 32)
        assert out["label"].data.dtype == augment.LABEL_DTYPE
        assert set(out["label"].data.unique().tolist()) <= {0, 1, 2}
        assert out["image"].data.dtype == torch.float32


@pytest.mark.parametrize(
    "probabilities",
    [
        ALL_ON,
        {
            "flip": 0.5,
            "affine": 0.3,
            "contrast": 0.3,
            "gamma": 0.3,
            "bias_field": 0.3,
            "noise": 0.3,
        },
    ],
)
def test_training_transform_equals_torchio_reference(lps_subject, probabilities):
    """liverseg's pipeline (one copy per subject, the separable bias field, ZNormalise) is
    TorchIO's own pipeline to the bit under the same seed, and leaves its input alone."""
    subject = augment.torchio_subject(lps_subject, "multiclass")
    subject.load()
    before = subject["image"].data.clone()
    for seed in range(5):
        outputs = []
        for reference in (False, True):
            torch.manual_seed(seed)
            outputs.append(
                augment.training_transform(probabilities, (32, 32, 16), torchio_reference=reference)(subject)
            )
        ours, theirs = outputs
        assert torch.equal(ours["image"].data, theirs["image"].data)
        assert torch.equal(ours["label"].data, theirs["label"].data)
    assert torch.equal(subject["image"].data, before)


def test_padding_uses_minimum_and_background():
    image = torch.arange(8 * 8 * 4, dtype=torch.float32).reshape(1, 8, 8, 4) + 5
    label = torch.ones(1, 8, 8, 4, dtype=torch.uint8)
    subject = tio.Subject(image=tio.ScalarImage(tensor=image), label=tio.LabelMap(tensor=label))
    out = augment.EnsureMinimumShape((8, 6, 9))(subject)
    assert out.spatial_shape == (8, 8, 9)  # longer axes untouched
    assert torch.equal(out["image"].data[..., 2:6], image)  # 5 slices added: 2 before, 3 after
    assert float(out["image"].data[..., :2].max()) == 5.0 and float(out["image"].data[..., 6:].min()) == 5.0
    assert int(out["label"].data[..., :2].max()) == 0 and int(out["label"].data[..., 2:6].min()) == 1


def test_flips_stay_in_plane():
    """Flips mirror H and W only; the order of the slices is never changed."""
    image = torch.rand(1, 16, 16, 6) + torch.arange(6, dtype=torch.float32) * 10
    subject = tio.Subject(image=tio.ScalarImage(tensor=image), label=tio.LabelMap(tensor=(image > 30).to(torch.uint8)))
    transform = augment.training_transform({"flip": 1.0}, (16, 16, 6))
    torch.manual_seed(1)
    flipped_once = False
    for _ in range(8):
        out = transform(subject)["image"].data
        means = out.mean(dim=(0, 1, 2))
        assert torch.all(means[1:] > means[:-1])  # slice order kept
        flipped_once |= not torch.allclose(out, torch.from_numpy(augment.normalise(image[0].numpy()))[None])
    assert flipped_once


def test_labels_collate_across_stored_dtypes(tmp_path):
    """Label files stored as uint8, int16 and float32 give patches of one dtype, which
    a DataLoader can batch (mixed integer dtypes break collation)."""
    records = []
    for n, dtype in enumerate((np.uint8, np.int16, np.float32)):
        image, label = phantom(seed=n)
        write_pair(tmp_path, n, image, label.astype(dtype), np.diag([0.8, 0.8, 3.0, 1.0]))
        records.append(record(tmp_path, n))
    dataset = tio.SubjectsDataset(
        [augment.torchio_subject(r, "tumor") for r in records],
        transform=augment.training_transform(ALL_ON, (16, 16, 8)),
    )
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch["label"][tio.DATA].dtype == augment.LABEL_DTYPE
    assert set(batch["label"][tio.DATA].unique().tolist()) <= {0, 1}


def test_random_contrast_scales_about_mean_within_range():
    image = torch.linspace(-2, 2, 1000).reshape(1, 10, 10, 10)
    subject = tio.Subject(image=tio.ScalarImage(tensor=image))
    torch.manual_seed(0)
    out = augment.RandomContrast((0.5, 0.5))(subject)["image"].data
    torch.testing.assert_close(out, image * 0.5)  # mean 0: contrast halves every value
    out = augment.RandomContrast((2.0, 2.0))(subject)["image"].data
    assert float(out.min()) == -2 and float(out.max()) == 2  # clipped to the original range


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"rotation": 0.5}, "unknown key"),
        ({"flip": 1.5}, r"augmentation.flip: a probability"),
        ({"noise": "yes"}, r"augmentation.noise: a probability"),
    ],
)
def test_bad_augmentation_config(cfg, message):
    with pytest.raises(ConfigError, match=message):
        augment.training_transform(cfg, (32, 32, 32))
