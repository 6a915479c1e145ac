"""The command-line tools never destroy input and never report a wrong result silently (issue 19).

Every case runs the real `liverseg` command in a subprocess on small NIfTI files made
here, and asserts the exit status, the one line on stderr (no traceback) and that every
input file is unchanged byte for byte. Grouped by principle:
1. outputs never alias inputs (links and `..` resolved), `synth` replaces only a cohort;
2. `evaluate` refuses comparisons that mean nothing (same folder, another grid in world
   space) and skips hidden files;
3. every input and model is checked before the first output;
4. model files carry a checksum;
6. user errors (devices, output locations) end in one line.
Principle 5 (the config at the workflow's start) is in test_config.py and test_bad_input.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

SHAPE = (20, 20, 12)
AFFINE = np.array([[2.0, 0, 0, -19], [0, 2.0, 0, -19], [0, 0, 3.0, -16.5], [0, 0, 0, 1]])


def label_volume(shift: int = 0) -> np.ndarray:
    label = np.zeros(SHAPE, np.uint8)
    label[5 + shift : 15, 5:15, 3:9] = 1
    label[8:11, 8:11, 5:7] = 2
    return label


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def save_with_header_affine(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """A file whose header holds `affine` as is (nibabel refuses to encode a singular one)."""
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    header.set_sform(affine, code=1)
    header.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(data, None, header), str(path))
    return path


def write_model(path: Path) -> Path:
    """A tiny trained-format 3-class DynUNet, written by training's own writer."""
    from liverseg.augment import class_names
    from liverseg.checkpoints import TrainingState, network_from_spec, write_model

    spec = {
        "network": "dynunet",
        "task": "multiclass",
        "out_channels": 3,
        "class_names": class_names("multiclass"),
        "patch_size": [16, 16, 16],
        "ahnet_cfg": {},
        "dynunet_cfg": {"filters": 2},
        "median_spacing": [2.0, 2.0, 3.0],
    }
    torch.manual_seed(0)
    state = TrainingState(
        epoch=1,
        best_loss=0.5,
        best_epoch=1,
        best_state=network_from_spec(spec).state_dict(),
        since_best=0,
        history=[],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_model(path, spec, state)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """img/ (two images), gt/ (their labels), pred/ (predictions on the labels' grid), models/fold1/model.pt."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    for i in range(2):
        save(root / f"img/im{i}.nii.gz", rng.normal(size=SHAPE).astype(np.float32))
        save(root / f"gt/lb{i}.nii.gz", label_volume())
        save(root / f"pred/im{i}.nii.gz", label_volume(shift=i))
    write_model(root / "models/fold1/model.pt")
    return root


def digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under `root` (links followed)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def liverseg(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liverseg.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def refused(cwd: Path, *args: str, says: list[str], env: dict | None = None, inputs: Path | None = None) -> str:
    """Run a command that must fail: exit 1, one line on stderr holding every fragment of
    `says`, no traceback, and every file under `inputs` (default: cwd) unchanged."""
    inputs = inputs or cwd
    before = digests(inputs)
    run = liverseg(cwd, *args, env=env)
    messages = [line for line in run.stderr.splitlines() if line.startswith("liverseg:")]
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert len(messages) == 1 and "\n  " not in messages[0], run.stderr
    assert all(fragment in messages[0] for fragment in says), messages[0]
    assert digests(inputs) == before, "an input changed"
    return messages[0]


def succeeds(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    before = {k: v for k, v in digests(cwd).items()}
    run = liverseg(cwd, *args)
    assert run.returncode == 0, run.stderr
    after = digests(cwd)
    assert {k: after.get(k) for k in before} == before, "an input changed"
    return run


PREDICT = ("predict", "--models", "models", "--device", "cpu")


# --- 1. outputs never alias inputs -------------------------------------------------------


@pytest.mark.parametrize("output", ["img", "./img/../img", "imglink", "img/"])
def test_predict_refuses_to_write_over_its_input_folder(data, output):
    (data / "imglink").unlink(missing_ok=True)
    (data / "imglink").symlink_to("img")
    message = refused(data, *PREDICT, "--input", "img", "--output", output, says=["im0.nii.gz", "is"])
    assert "overwrite" in message
    assert sorted(os.listdir(data / "img")) == ["im0.nii.gz", "im1.nii.gz"]


def test_predict_refuses_the_folder_of_an_input_file(data):
    refused(
        data,
        *PREDICT,
        "--input",
        "img/im1.nii.gz",
        "--output",
        "img",
        says=["img/im1.nii.gz", "overwrite"],
    )


def test_predict_refuses_an_output_that_is_a_file(data):
    refused(
        data,
        *PREDICT,
        "--input",
        "img",
        "--output",
        "models/fold1/model.pt",
        says=["models/fold1/model.pt: exists and is not a folder"],
    )


def test_evaluate_refuses_to_write_over_a_label(data):
    refused(
        data,
        "evaluate",
        "--pred",
        "pred",
        "--gt",
        "gt",
        "--out",
        "gt/lb0.nii.gz",
        says=["gt/lb0.nii.gz: is an input", "overwrite"],
    )


def test_evaluate_refuses_a_nifti_name_in_an_input_folder(data):
    refused(
        data,
        "evaluate",
        "--pred",
        "pred",
        "--gt",
        "gt",
        "--out",
        "gt/lb60.nii.gz",
        says=["gt/lb60.nii.gz: a NIfTI name in an input folder"],
    )
    assert not (data / "gt/lb60.nii.gz").exists()


def test_evaluate_refuses_an_output_linked_to_a_prediction(data, tmp_path):
    (tmp_path / "metrics.tsv").symlink_to(data / "pred/im1.nii.gz")
    refused(
        data,
        "evaluate",
        "--pred",
        "pred",
        "--gt",
        "gt",
        "--out",
        str(tmp_path / "metrics.tsv"),
        says=["metrics.tsv: is the input pred/im1.nii.gz"],
    )


SYNTH = ("synth", "--scale", "16", "--seed", "3")


def test_synth_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "atlas").mkdir()
    (tmp_path / "atlas" / "imagesTr").mkdir()
    save(tmp_path / "atlas/imagesTr/im0.nii.gz", np.ones(SHAPE, np.float32))
    refused(tmp_path, *SYNTH, "atlas", "--subjects", "2", says=["atlas: not empty", "--overwrite"])


def test_synth_overwrite_replaces_only_a_cohort(tmp_path):
    (tmp_path / "download").mkdir()
    (tmp_path / "download" / "README").write_text("ATLAS")
    refused(
        tmp_path,
        *SYNTH,
        "download",
        "--subjects",
        "2",
        "--overwrite",
        says=["download: holds README"],
    )
    refused(
        tmp_path,
        *SYNTH,
        "download/README",
        "--subjects",
        "2",
        says=["download/README: exists and is not a folder"],
    )


def test_synth_overwrite_leaves_exactly_the_new_cohort(tmp_path):
    assert liverseg(tmp_path, *SYNTH, "old", "--subjects", "3", "--heldout", "1").returncode == 0
    (tmp_path / "old/train/imagesTr/.hidden").write_text("stale")
    refused(tmp_path, *SYNTH, "old", "--subjects", "2", "--heldout", "0", says=["old: not empty"])
    run = liverseg(tmp_path, *SYNTH, "old", "--subjects", "2", "--heldout", "0", "--overwrite")
    assert run.returncode == 0, run.stderr
    assert liverseg(tmp_path, *SYNTH, "fresh", "--subjects", "2", "--heldout", "0").returncode == 0
    assert digests(tmp_path / "old") == digests(tmp_path / "fresh")  # no stale subject, no stale test/
    assert not (tmp_path / "old/test").exists()


# --- 2. comparisons that cannot mean anything -------------------------------------------


@pytest.mark.parametrize("gt", ["pred", "./pred", "predlink"])
def test_evaluate_refuses_the_same_folder_twice(data, gt):
    (data / "predlink").unlink(missing_ok=True)
    (data / "predlink").symlink_to("pred")
    refused(
        data,
        "evaluate",
        "--pred",
        "pred",
        "--gt",
        gt,
        "--out",
        "m.tsv",
        says=["the same folder", "itself"],
    )
    assert not (data / "m.tsv").exists()


def test_evaluate_refuses_a_prediction_that_is_the_label_file(data, tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred/im0.nii.gz").symlink_to(data / "gt/lb0.nii.gz")
    (tmp_path / "pred/im1.nii.gz").symlink_to(data / "pred/im1.nii.gz")
    refused(
        data,
        "evaluate",
        "--pred",
        str(tmp_path / "pred"),
        "--gt",
        "gt",
        "--out",
        str(tmp_path / "m.tsv"),
        says=["im0.nii.gz: the ground truth file itself"],
    )


def moved(affine: np.ndarray, how: str) -> np.ndarray:
    affine = affine.copy()
    if how == "shifted":
        affine[0, 3] += 12.0
    elif how == "rotated":
        c, s = np.cos(0.1), np.sin(0.1)
        affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ affine[:3, :3]
    elif how == "slightly shifted":
        affine[2, 3] += 0.5
    return affine


@pytest.mark.parametrize("how", ["shifted", "rotated", "slightly shifted"])
def test_evaluate_refuses_a_prediction_on_another_grid(data, tmp_path, how):
    """Same shape and spacing, other place in world space: the metrics would be meaningless."""
    save(tmp_path / "pred/im0.nii.gz", label_volume(), moved(AFFINE, how))
    save(tmp_path / "pred/im1.nii.gz", label_volume())
    refused(
        data,
        "evaluate",
        "--pred",
        str(tmp_path / "pred"),
        "--gt",
        "gt",
        "--out",
        str(tmp_path / "m.tsv"),
        says=[
            "im0.nii.gz: not on the grid of the ground truth gt/lb0.nii.gz",
            "mm apart",
            "tolerance 0.1 mm",
        ],
    )
    assert not (tmp_path / "m.tsv").exists()


def test_evaluate_accepts_the_same_grid_stored_in_another_orientation(data, tmp_path):
    """A prediction stored left-right flipped, with the affine that says so, is the same grid."""
    flip = np.diag([-1.0, 1, 1, 1])
    flip[0, 3] = SHAPE[0] - 1
    save(tmp_path / "pred/im0.nii.gz", label_volume(shift=0)[::-1].copy(), AFFINE @ flip)
    save(tmp_path / "pred/im1.nii.gz", label_volume(shift=1))
    succeeds(
        data,
        "evaluate",
        "--pred",
        str(tmp_path / "pred"),
        "--gt",
        "gt",
        "--out",
        str(tmp_path / "m.tsv"),
    )
    succeeds(data, "evaluate", "--pred", "pred", "--gt", "gt", "--out", str(tmp_path / "aligned.tsv"))
    flipped, aligned = (pd.read_csv(tmp_path / name, sep="\t") for name in ("m.tsv", "aligned.tsv"))
    pd.testing.assert_frame_equal(flipped, aligned)
    assert flipped.loc[0, "liver_dice"] == 1.0


def test_evaluate_skips_hidden_files(data, tmp_path):
    """macOS's ._ resource forks beside the labels and predictions are not subjects."""
    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
        for path in (data / folder).iterdir():
            (tmp_path / folder / path.name).write_bytes(path.read_bytes())
            (tmp_path / folder / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07" * 20)
    succeeds(tmp_path, "evaluate", "--pred", "pred", "--gt", "gt", "--out", "m.tsv")
    assert list(pd.read_csv(tmp_path / "m.tsv", sep="\t")["subject"]) == ["im0", "im1"]


# --- 3. everything checked before anything is written ----------------------------------


def bad_images(kind: str, folder: Path) -> str:
    """A folder whose second image is bad in one way; returns what the message must say."""
    rng = np.random.default_rng(1)
    save(folder / "im0.nii.gz", rng.normal(size=SHAPE).astype(np.float32))
    image = rng.normal(size=SHAPE).astype(np.float32)
    path = folder / "im1.nii.gz"
    if kind == "nan":
        image[3, 4, 5] = np.nan
        save(path, image)
        return "1 voxel(s) with a NaN or infinite intensity"
    if kind == "inf":
        image[:2] = np.inf
        save(path, image)
        return "480 voxel(s) with a NaN or infinite intensity"
    if kind == "4d":
        save(path, image[..., None].repeat(2, axis=-1))
        return "not a 3D volume (shape (20, 20, 12, 2))"
    if kind == "truncated":
        save(path, image)
        path.write_bytes(path.read_bytes()[:300])
        return "cannot read NIfTI"
    if kind == "singular grid":
        save_with_header_affine(path, image, np.diag([2.0, 2.0, 0.0, 1.0]))
        return "no valid voxel grid"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["nan", "inf", "4d", "truncated", "singular grid"])
def test_predict_checks_every_image_before_the_first_output(data, tmp_path, kind):
    says = bad_images(kind, tmp_path / "images")
    refused(
        data,
        *PREDICT,
        "--input",
        str(tmp_path / "images"),
        "--output",
        str(tmp_path / "out"),
        says=["cannot segment:", "images/im1.nii.gz: ", says],
        inputs=tmp_path,
    )
    assert not (tmp_path / "out").exists()


def test_predict_lists_every_bad_image(data, tmp_path):
    bad_images("nan", tmp_path / "images")
    save(tmp_path / "images/im2.nii.gz", np.zeros((4, 4), np.float32))
    run = liverseg(data, *PREDICT, "--input", str(tmp_path / "images"), "--output", str(tmp_path / "out"))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cannot segment: 2 problems:" in run.stderr and "im1.nii.gz: 1 voxel(s)" in run.stderr
    assert "im2.nii.gz: not a 3D volume" in run.stderr
    assert not (tmp_path / "out").exists()


def test_predict_refuses_a_file_that_is_no_nifti(data, tmp_path):
    (tmp_path / "scan.txt").write_text("not an image")
    refused(
        data,
        *PREDICT,
        "--input",
        str(tmp_path / "scan.txt"),
        "--output",
        str(tmp_path / "out"),
        says=["scan.txt: not a NIfTI image name"],
    )


def test_evaluate_checks_every_label_before_writing(data, tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt/lb0.nii.gz").write_bytes((data / "gt/lb0.nii.gz").read_bytes())
    save(tmp_path / "gt/lb1.nii.gz", label_volume() * 2)  # labels up to 4
    refused(
        data,
        "evaluate",
        "--pred",
        "pred",
        "--gt",
        str(tmp_path / "gt"),
        "--out",
        str(tmp_path / "m.tsv"),
        says=["gt/lb1.nii.gz: labels outside {0, 1, 2}: 4"],
        inputs=tmp_path,
    )
    assert not (tmp_path / "m.tsv").exists()


# --- 4. model files carry their checksum -------------------------------------------------


def test_a_damaged_model_is_refused_naming_the_file(data, tmp_path):
    damaged = tmp_path / "models/fold1/model.pt"
    damaged.parent.mkdir(parents=True)
    payload = torch.load(data / "models/fold1/model.pt", weights_only=True)
    raw = bytearray((data / "models/fold1/model.pt").read_bytes())
    weights = next(iter(payload["state_dict"].values())).numpy().tobytes()
    at = raw.find(weights[:64])  # inside the first tensor's bytes: the archive stays readable
    raw[at + 8] ^= 0x40
    damaged.write_bytes(raw)
    save(tmp_path / "img/im0.nii.gz", np.ones(SHAPE, np.float32))
    refused(
        tmp_path,
        "predict",
        "--models",
        "models",
        "--device",
        "cpu",
        "--input",
        "img",
        "--output",
        "out",
        says=["models/fold1/model.pt: checksum mismatch"],
    )
    assert not (tmp_path / "out").exists()


def test_an_older_model_without_checksum_loads_with_one_warning(data, tmp_path):
    payload = torch.load(data / "models/fold1/model.pt", weights_only=True)
    del payload["sha256"]
    (tmp_path / "old/fold1").mkdir(parents=True)
    torch.save(payload, tmp_path / "old/fold1/model.pt")
    run = liverseg(
        data,
        *PREDICT[:2],
        str(tmp_path / "old"),
        *PREDICT[3:],
        "--input",
        "img",
        "--output",
        str(tmp_path / "out"),
    )
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("liverseg: warning:")]
    assert len(warnings) == 1 and "old/fold1/model.pt: no checksum" in warnings[0], run.stderr
    assert (tmp_path / "out/im1.nii.gz").exists() and (tmp_path / "out/lesions.tsv").exists()


def test_model_named_twice_is_used_once(data, tmp_path):
    run = liverseg(
        data,
        "predict",
        "--models",
        "models",
        "models/fold1/model.pt",
        "--device",
        "cpu",
        "--input",
        "img",
        "--output",
        str(tmp_path / "twice"),
    )
    assert run.returncode == 0, run.stderr
    assert liverseg(data, *PREDICT, "--input", "img", "--output", str(tmp_path / "once")).returncode == 0
    assert digests(tmp_path / "twice") == digests(tmp_path / "once")


# --- 6. one line for every user error ----------------------------------------------------


@pytest.mark.parametrize(
    "device, says",
    [
        ("gpu", "device 'gpu': not a device name torch knows"),
        ("cuda", "device 'cuda': not available here"),
        ("cuda:7", "device 'cuda:7': not available here"),
        ("tpu", "not a device name torch knows"),
    ],
)
def test_predict_refuses_an_unusable_device(data, tmp_path, device, says):
    refused(
        data,
        "predict",
        "--models",
        "models",
        "--device",
        device,
        "--input",
        "img",
        "--output",
        str(tmp_path / "out"),
        says=[says],
        env={"CUDA_VISIBLE_DEVICES": ""},
    )
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_an_existing_folder_as_output(data):
    refused(
        data,
        "evaluate",
        "--pred",
        "pred",
        "--gt",
        "gt",
        "--out",
        "models",
        says=["models: is a folder; give the output a file name"],
    )


def test_evaluate_refuses_an_output_below_a_file(data):
    refused(
        data,
        "evaluate",
        "--pred",
        "pred",
        "--gt",
        "gt",
        "--out",
        "img/im0.nii.gz/m.tsv",
        says=["img/im0.nii.gz: exists and is not a folder"],
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_evaluate_refuses_a_read_only_folder_before_computing(data, tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        refused(
            data,
            "evaluate",
            "--pred",
            "pred",
            "--gt",
            "gt",
            "--out",
            str(tmp_path / "ro/sub/m.tsv"),
            says=["ro/sub: cannot write there", "read-only"],
        )
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_predict_and_evaluate_still_work(data, tmp_path):
    """The clean path: segmentations and lesions.tsv, then their metrics; inputs unchanged."""
    run = succeeds(data, *PREDICT, "--input", "img", "--output", str(tmp_path / "seg"))
    assert "segmentations and lesions.tsv" in run.stdout
    assert sorted(os.listdir(tmp_path / "seg")) == ["im0.nii.gz", "im1.nii.gz", "lesions.tsv"]
    run = succeeds(data, "evaluate", "--pred", "pred", "--gt", "gt", "--out", str(tmp_path / "m.tsv"))
    assert "2 subjects evaluated" in run.stdout


def test_predict_computes_in_the_precision_asked(data, tmp_path):
    """--precision (inference.precision): float32 and bfloat16 both segment every image; a
    precision the schema does not know is refused before any output is written."""
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        succeeds(data, *PREDICT, "--precision", precision, "--input", "img", "--output", str(out))
        assert sorted(os.listdir(out)) == ["im0.nii.gz", "im1.nii.gz", "lesions.tsv"]
    run = liverseg(data, *PREDICT, "--precision", "half", "--input", "img", "--output", str(tmp_path / "half"))
    assert run.returncode == 2 and "invalid choice: 'half'" in run.stderr, run.stderr
    assert not (tmp_path / "half").exists()
