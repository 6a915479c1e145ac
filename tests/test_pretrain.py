"""2.5D encoder pretraining on tiny synthetic volumes."""

import nibabel as nib
import numpy as np
import pytest
import torch

from liverseg.errors import ConfigError, InputError
from liverseg.nets import ResNet2d, ahnet, transfer_encoder
from liverseg.pretrain import load_encoder, pretrain_encoder

LAYERS = (1, 1, 1, 1)
SETTINGS = dict(layers=LAYERS, epochs=3, slices_per_epoch=16, batch_size=4, lr=1e-3, seed=7, crop=64)


def write_subject(folder, index: int, shape=(64, 64, 8)) -> dict:
    """A bright ellipsoid 'liver' holding a brighter 'tumour', in noise."""
    rng = np.random.default_rng(index)
    h, w, d = shape
    y, x, z = np.meshgrid(np.arange(h), np.arange(w), np.arange(d), indexing="ij")
    liver = ((y - h / 2 - index) / (h / 3)) ** 2 + ((x - w / 2) / (w / 3)) ** 2 + ((z - d / 2) / (d / 2.5)) ** 2 < 1
    tumor = liver & (((y - h / 2) / 4) ** 2 + ((x - w / 2 + 3) / 4) ** 2 < 1)
    label = liver.astype(np.uint8) + tumor
    image = rng.normal(100, 20, shape) + 150 * liver + 150 * tumor
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    paths = {"image": folder / f"im{index}.nii.gz", "label": folder / f"lb{index}.nii.gz"}
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), paths["image"])
    nib.save(nib.Nifti1Image(label, affine), paths["label"])
    return {"subject": f"im{index}", "image": str(paths["image"]), "label": str(paths["label"])}


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    return [write_subject(folder, i) for i in range(2)]


@pytest.fixture(scope="module")
def trained(subjects, tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder") / "encoder.pt"
    pretrain_encoder(subjects, path, **SETTINGS)
    return path


def test_pretraining_lowers_the_loss_and_writes_the_encoder(trained):
    payload = torch.load(trained, weights_only=True)
    assert payload["layers"] == list(LAYERS)
    history = payload["history"]
    assert len(history) == SETTINGS["epochs"]
    assert history[-1] < 0.7 * history[0]
    assert not any(p.name.startswith(".") for p in trained.parent.iterdir())  # no temporary left behind


def test_pretraining_is_deterministic_from_the_seed(subjects, tmp_path):
    short = {**SETTINGS, "epochs": 1, "slices_per_epoch": 4, "batch_size": 2, "crop": 32}
    runs = []
    for name in ("a.pt", "b.pt"):
        pretrain_encoder(subjects, tmp_path / name, **short)
        runs.append(torch.load(tmp_path / name, weights_only=True))
    assert runs[0]["history"] == runs[1]["history"]
    assert all(torch.equal(runs[0]["state_dict"][k], runs[1]["state_dict"][k]) for k in runs[0]["state_dict"])
    pretrain_encoder(subjects, tmp_path / "c.pt", **{**short, "seed": short["seed"] + 1})
    assert torch.load(tmp_path / "c.pt", weights_only=True)["history"] != runs[0]["history"]


def test_loaded_encoder_transfers_into_an_ahnet_with_the_same_layers(trained):
    net2d = load_encoder(trained)
    assert isinstance(net2d, ResNet2d)
    saved = torch.load(trained, weights_only=True)["state_dict"]
    assert torch.equal(net2d.conv1.weight, saved["conv1.weight"])
    net3d = ahnet(3, LAYERS, psp_block_num=1)
    transfer_encoder(net3d, net2d)
    for k in range(3):
        assert torch.equal(net3d.conv1.weight[:, 0, :, :, k], saved["conv1.weight"][:, k])
    assert torch.equal(net3d.layer2[0].conv2.weight[..., 0], saved["layer2.0.conv2.weight"])


def test_labels_outside_the_three_classes_are_refused(tmp_path):
    subject = write_subject(tmp_path, 0)
    img = nib.load(subject["label"])
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 2, img.affine), subject["label"])  # 0, 2, 4
    with pytest.raises(InputError, match=r"lb0\.nii\.gz: labels must be 0, 1 or 2"):
        pretrain_encoder([subject], tmp_path / "e.pt", **SETTINGS)
    assert not (tmp_path / "e.pt").exists()


def test_bad_settings_and_bad_files_are_refused(subjects, tmp_path):
    with pytest.raises(ConfigError, match=r"pretrain\.crop 16"):
        pretrain_encoder(subjects, tmp_path / "e.pt", **{**SETTINGS, "crop": 16})
    with pytest.raises(ConfigError, match=r"pretrain\.lr 0"):  # the config's key, not another name
        pretrain_encoder(subjects, tmp_path / "e.pt", **{**SETTINGS, "lr": 0})
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match=r"junk\.pt: not an encoder written by pretrain_encoder"):
        load_encoder(tmp_path / "junk.pt")
    with pytest.raises(InputError, match=r"missing\.pt: pretrained encoder not found"):
        load_encoder(tmp_path / "missing.pt")
