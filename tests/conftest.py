"""Shared fixtures: small cohorts in the ATLAS layout, written as real NIfTI files."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ATLAS_PHASES = ["arterial"] * 9 + ["portal"] * 3 + ["delayed"] * 2 + ["unkown"] + ["no contrast agent"]


def write_pair(root: Path, n: int, image: np.ndarray, label: np.ndarray, affine: np.ndarray, label_affine=None) -> None:
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(image, affine), str(root / "imagesTr" / f"im{n}.nii.gz"))
    nib.save(
        nib.Nifti1Image(label, affine if label_affine is None else label_affine),
        str(root / "labelsTr" / f"lb{n}.nii.gz"),
    )


def phantom(shape=(40, 40, 12), seed=0):
    """A box 'liver' with one small 'tumour', and a noisy image brighter in the liver."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    label[10:30, 8:28, 2:10] = 1
    label[15:18, 15:19, 4:6] = 2
    image = (rng.normal(100, 10, shape) + 50 * (label > 0)).astype(np.float32)
    return image, label


def make_atlas(root: Path, n_subjects: int = 16, key_style: str = "number", phases: list[str] | None = None) -> Path:
    """A valid cohort in the official layout; returns the root folder. `phases`: the
    contrast_phase strings of the subjects in order (default: ATLAS_PHASES repeated)."""
    info = {}
    phases = phases or [ATLAS_PHASES[i % len(ATLAS_PHASES)] for i in range(n_subjects)]
    for i in range(n_subjects):
        image, label = phantom(seed=i)
        affine = np.diag([0.8 + 0.02 * i, 0.8 + 0.02 * i, 3.0, 1.0])
        write_pair(root, i, image, label, affine)
        key = str(i) if key_style == "number" else f"im{i}"
        info[key] = {"contrast_phase": phases[i], "machine": "test", "sequence": "VIBE"}
    (root / "patient_info_train.json").write_text(json.dumps(info))
    return root


@pytest.fixture
def atlas_root(tmp_path) -> Path:
    return make_atlas(tmp_path / "train")


# --- workflow tests (test_workflow.py; helpers in workflow_helpers.py) -----------------


@pytest.fixture(scope="session")
def tiny_dag(tmp_path_factory):
    """The whole DAG on tests/configs/tiny.yaml, run once per session in a private copy of
    the workflow: returns (workdir, Run). Several workflow tests derive their checks from it."""
    from workflow_helpers import CORES, TINY, copy_workflow, run_snakemake

    work = copy_workflow(tmp_path_factory.mktemp("tiny_dag"))
    run = run_snakemake(work, "--cores", str(CORES), "--configfile", TINY, timeout=3600)
    assert run.returncode == 0, run.tail()
    return work, run


# --- the ImageNet weights in torchvision's format (test_nets, test_imagenet, test_train) ---


def torchvision_resnet50_state() -> dict:
    """A state dict with torchvision's ResNet-50 names and shapes, written out independently."""
    import torch

    # Its own generator: the draw must not depend on which tests ran before (an unlucky
    # draw of unscaled weights can overflow a forward pass).
    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    def rand(*shape):
        return torch.rand(*shape, generator=generator)

    state = {"conv1.weight": randn(64, 3, 7, 7)}

    def bn(prefix, n):
        for name, value in (
            ("weight", rand(n)),
            ("bias", randn(n)),
            ("running_mean", randn(n)),
            ("running_var", rand(n)),
            ("num_batches_tracked", torch.tensor(7)),
        ):
            state[f"{prefix}.{name}"] = value

    bn("bn1", 64)
    inplanes = 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for b in range(blocks):
            p = f"layer{i}.{b}"
            state[f"{p}.conv1.weight"] = randn(planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            state[f"{p}.conv2.weight"] = randn(planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            state[f"{p}.conv3.weight"] = randn(planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                state[f"{p}.downsample.0.weight"] = randn(planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    state["fc.weight"] = randn(1000, 2048)
    state["fc.bias"] = randn(1000)
    return state


@pytest.fixture
def torchvision_weights(tmp_path, monkeypatch):
    """(path, state): a torchvision-format ResNet-50 file made here, named as torchvision
    names its files, its SHA-256 prefix made the one liverseg expects (the real file's
    cannot be made without the real file)."""
    import torch

    from liverseg import imagenet

    state = torchvision_resnet50_state()
    staged = tmp_path / "staged.pth"
    torch.save(state, staged)
    prefix = imagenet.sha256_of(staged)[:8]
    path = tmp_path / "weights" / f"resnet50-{prefix}.pth"
    path.parent.mkdir()
    staged.rename(path)
    monkeypatch.setattr(imagenet, "SHA256_PREFIX", prefix)
    return path, state


def training_job_of(settings: dict, encoder_path=None):
    """The TrainingJob of a test's settings: the config sections (ahnet, dynunet, training,
    loss, augmentation, inference) as given, and model, median_spacing, seed, threads."""
    from liverseg.train import training_job

    return training_job(
        settings,
        settings["model"],
        median_spacing=settings["median_spacing"],
        seed=settings["seed"],
        encoder_path=encoder_path,
        threads=settings["threads"],
    )
