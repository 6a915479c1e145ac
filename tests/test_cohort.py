"""The ATLAS reader: phases, orientation, and one clear error per kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_atlas, phantom, write_pair

from liverseg.cohort import read_cohort, scan_dataset, write_cohort
from liverseg.errors import InputError


def test_reads_layout_phases_and_spacing(tmp_path):
    root = make_atlas(tmp_path / "train", key_style="im")
    table = write_cohort(root, tmp_path / "out" / "cohort.tsv")
    assert list(table.columns) == ["subject", "image", "label", "phase", "spacing", "shape"]
    assert table["subject"].tolist()[:3] == ["im0", "im1", "im2"]  # numeric, not lexical order
    records = read_cohort(tmp_path / "out" / "cohort.tsv")
    assert {r["phase"] for r in records} == {"A", "P", "D", "U", "NC"}  # "unkown" (sic) maps to U
    assert records[1]["spacing"] == pytest.approx((0.82, 0.82, 3.0))
    assert records[0]["shape"] == (40, 40, 12)


def test_numeric_phase_keys_accepted(atlas_root):
    assert len(scan_dataset(atlas_root)) == 16


def test_reorients_to_canonical_with_slices_last(tmp_path):
    root = make_atlas(tmp_path / "train")
    image, label = phantom()
    # stored LPS-like with axes permuted: slices first on disk
    affine = np.array([[0, -0.8, 0, 0], [0, 0, -0.8, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    write_pair(
        root,
        0,
        np.transpose(image, (2, 0, 1)).copy(),
        np.transpose(label, (2, 0, 1)).copy(),
        affine,
    )
    table = scan_dataset(root)
    assert table.loc[0, "shape"] == "40,40,12"
    assert table.loc[0, "spacing"] == "0.8,0.8,3"


def _break(root, n=3):
    return root / "imagesTr" / f"im{n}.nii.gz", root / "labelsTr" / f"lb{n}.nii.gz"


def expect_error(root, *fragments):
    with pytest.raises(InputError) as info:
        scan_dataset(root)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_truncated_image(atlas_root):
    image_path, _ = _break(atlas_root)
    data = image_path.read_bytes()
    image_path.write_bytes(data[: len(data) // 2])
    expect_error(atlas_root, "im3.nii.gz", "cannot read NIfTI")


def test_missing_label(atlas_root):
    _, label_path = _break(atlas_root)
    label_path.unlink()
    expect_error(atlas_root, "lb3.nii.gz", "not found")


def test_shape_mismatch(atlas_root):
    image, label = phantom()
    write_pair(atlas_root, 3, image, label[:, :, :10].copy(), np.eye(4))
    expect_error(atlas_root, "lb3.nii.gz", "shape")


def test_affine_mismatch(atlas_root):
    image, label = phantom()
    write_pair(
        atlas_root,
        3,
        image,
        label,
        np.diag([0.8, 0.8, 3.0, 1]),
        label_affine=np.diag([0.8, 0.8, 2.5, 1]),
    )
    expect_error(atlas_root, "lb3.nii.gz", "affine")


@pytest.mark.parametrize("value, dtype, shown", [(3, np.uint8, "3"), (0.5, np.float32, "0.5")])
def test_labels_outside_range(atlas_root, value, dtype, shown):
    image, label = phantom()
    label = label.astype(dtype)
    label[0, 0, 0] = value
    write_pair(atlas_root, 3, image, label, np.eye(4))
    expect_error(atlas_root, "lb3.nii.gz", f"label values {shown} outside")


def test_float_labels_with_integral_values_accepted(atlas_root):
    image, label = phantom()
    write_pair(atlas_root, 3, image, label.astype(np.float32), np.eye(4))
    assert len(scan_dataset(atlas_root)) == 16


def test_four_dimensional_image(atlas_root):
    image, label = phantom()
    write_pair(atlas_root, 3, np.stack([image, image], axis=-1), label, np.eye(4))
    expect_error(atlas_root, "im3.nii.gz", "4 dimensions")


def test_nan_voxels(atlas_root):
    image, label = phantom()
    image[5, 5, 5] = np.nan
    write_pair(atlas_root, 3, image, label, np.eye(4))
    expect_error(atlas_root, "im3.nii.gz", "NaN")


def test_empty_label(atlas_root):
    image, label = phantom()
    write_pair(atlas_root, 3, image, np.zeros_like(label), np.eye(4))
    expect_error(atlas_root, "lb3.nii.gz", "empty")


def test_missing_phase_entry(atlas_root):
    info_path = atlas_root / "patient_info_train.json"
    info = json.loads(info_path.read_text())
    del info["3"]
    info_path.write_text(json.dumps(info))
    expect_error(atlas_root, "patient_info_train.json", "im3")


def test_unknown_phase_value(atlas_root):
    info_path = atlas_root / "patient_info_train.json"
    info = json.loads(info_path.read_text())
    info["3"]["contrast_phase"] = "venous-ish"
    info_path.write_text(json.dumps(info))
    expect_error(atlas_root, "patient_info_train.json", "venous-ish")


def test_missing_root(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        scan_dataset(tmp_path / "nowhere")


def test_natural_key_orders_numbers_as_numbers():
    from liverseg.cohort import natural_key

    names = ["im10", "im2", "lb1", "im1.nii.gz", "case2_t10", "case10_t2", "x"]
    assert sorted(names, key=natural_key) == ["case2_t10", "case10_t2", "im1.nii.gz", "im2", "im10", "lb1", "x"]
