"""The ImageNet encoder end to end, without the internet: the weights fetched (from a
file:// URL) or copied from ahnet.imagenet_weights and checked, one message naming both
ways to the weights when they are missing or wrong, the AHNet encoder holding them at
step 0 of training, and no encoder setting but "none" starting from random weights."""

from __future__ import annotations

import pytest
import torch
from conftest import make_atlas, training_job_of

from liverseg import imagenet
from liverseg.checkpoints import load_model
from liverseg.cohort import scan_dataset
from liverseg.encoders import check_encoder_source
from liverseg.errors import ConfigError, InputError
from liverseg.imagenet import fetch_weights
from liverseg.train import train_model

BOTH_WAYS = r"Get them one of two ways: run the workflow once where .* can be reached .* set ahnet\.imagenet_weights"


def test_fetch_downloads_checks_and_caches(torchvision_weights, tmp_path):
    path, _ = torchvision_weights
    out = tmp_path / "resources/imagenet" / path.name
    fetch_weights(out, url=path.as_uri())
    assert out.read_bytes() == path.read_bytes()


def test_fetch_copies_an_existing_file(torchvision_weights, tmp_path):
    path, _ = torchvision_weights
    out = tmp_path / "cache" / path.name
    fetch_weights(out, source=path, url="http://127.0.0.1:9/unreachable")  # the source wins: no download
    assert out.read_bytes() == path.read_bytes()


def test_wrong_checksum_is_one_clear_error_and_caches_nothing(torchvision_weights, tmp_path):
    path, _ = torchvision_weights
    other = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, other)
    out = tmp_path / "cache" / "resnet50.pth"
    for kwargs, named in (
        ({"source": other}, str(other)),
        ({"url": other.as_uri()}, f"the download of {other.as_uri()}"),
    ):
        with pytest.raises(
            InputError,
            match=rf"{named}: SHA-256 \w+\.\.\., expected {imagenet.SHA256_PREFIX}\.\.\. .*{BOTH_WAYS}",
        ):
            fetch_weights(out, **kwargs)
        assert not out.exists() and list(out.parent.iterdir()) == []  # no half-written or wrong cache


def test_missing_file_or_no_internet_names_both_ways(tmp_path):
    out = tmp_path / "cache" / "resnet50.pth"
    with pytest.raises(ConfigError, match=rf"ahnet\.imagenet_weights .*nothere\.pth: file not found\. {BOTH_WAYS}"):
        fetch_weights(out, source=tmp_path / "nothere.pth")
    with pytest.raises(InputError, match=rf"cannot download the ImageNet weights from .*nothere\.pth .*{BOTH_WAYS}"):
        fetch_weights(out, url=(tmp_path / "nothere.pth").as_uri())
    assert not out.exists()


# --------------------------------------------------------------------- training


SPACING = (0.8, 0.8, 3.0)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict:
    cohort = scan_dataset(make_atlas(tmp_path_factory.mktemp("atlas"), n_subjects=2)).to_dict("records")
    return {"train": cohort[:1], "validation": cohort[1:]}


def training_kwargs(encoder: str, layers=(3, 4, 6, 3)) -> dict:
    """One step of an AHNet with a learning rate too small to move any weight."""
    return {
        "model": {"network": "ahnet", "task": "liver", "patch_size": [64, 64, 32]},
        "ahnet": {"layers": list(layers), "psp_block_num": 1, "encoder": encoder},
        "dynunet": {"filters": 4},
        "training": {
            "learning_rate": 1e-30,
            "batch_size": 1,
            "max_epochs": 1,
            "patience": 1,
            "iterations_per_epoch": 1,
            "samples_per_volume": 1,
            "queue_length": 1,
            "num_workers": 0,
            "label_probabilities": {"background": 1, "liver": 1, "tumor": 1},
            "keep_checkpoint": False,
        },
        "loss": {"margin": 10, "alpha": 0.1, "dice_weight": 0},
        "augmentation": {k: 0.0 for k in ("flip", "affine", "contrast", "gamma", "bias_field", "noise")},
        "inference": {"overlap": 0.0, "mode": "constant", "sw_batch_size": 1},
        "seed": 0,
        "median_spacing": list(SPACING),
        "threads": 1,
    }


@pytest.mark.slow
def test_ahnet_encoder_starts_from_the_imagenet_weights(torchvision_weights, records, tmp_path):
    """The paper's ResNet-50 AHNet trained from the ImageNet file: after a step that moves
    nothing, its encoder's kernels are the file's, RGB channels as the first kernel's taps."""
    path, state = torchvision_weights
    job = training_job_of(training_kwargs("imagenet"), str(path))
    train_model(records["train"], records["validation"], job, tmp_path / "model")
    net, spec = load_model(tmp_path / "model" / "model.pt")
    weights = net.state_dict()
    assert spec["ahnet_cfg"]["encoder"] == "imagenet"
    assert torch.equal(weights["conv1.weight"], state["conv1.weight"].permute(0, 2, 3, 1)[:, None])
    for name in (
        "layer1.0.conv1.weight",
        "layer2.3.conv2.weight",
        "layer3.5.conv3.weight",
        "layer4.0.downsample.0.weight",
    ):
        assert torch.equal(weights[name], state[name][..., None]), name


@pytest.mark.parametrize(
    "encoder, path, message",
    [
        (
            "imagenet",
            None,
            r"ahnet\.encoder 'imagenet': no encoder file given \(the ImageNet ResNet-50 weights",
        ),
        (
            "slices",
            None,
            r"ahnet\.encoder 'slices': no encoder file given \(the fold's 2\.5D-pretrained encoder",
        ),
        (
            "none",
            "encoder.pt",
            r"ahnet\.encoder 'none' starts from random weights, yet the encoder file encoder\.pt",
        ),
        (None, None, r"ahnet\.encoder None: expected one of imagenet, slices, none"),
    ],
)
def test_no_setting_but_none_starts_from_random_weights(records, tmp_path, encoder, path, message):
    """Before any data is read or network built: an AHNet without the file its setting
    names (or with a file and 'none', or no setting at all) does not train."""
    kwargs = training_kwargs(encoder, layers=(1, 1, 1, 1))
    with pytest.raises(ConfigError, match=message):
        train_model([{"subject": "never-read"}], [{"subject": "never-read"}], training_job_of(kwargs, path), tmp_path)
    assert not any(tmp_path.iterdir())
    check_encoder_source("none", None)  # the one random start, and only when it is asked for
