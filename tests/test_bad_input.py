"""Bad input stops the workflow with one clear message, and no result is written (issue 6,
section 4).

Each broken cohort (16 subjects of 40x40x12 in the ATLAS layout, subject 3 broken) goes
through the workflow's cohort stage: `snakemake results/cohort/cohort.tsv` with
config/config.yaml and `--config dataset={source: atlas, root: ...}`. Each config error
stops the workflow as it starts. The reader's errors themselves are unit-tested in
test_cohort.py; here the point is what a user of the workflow sees: a non-zero exit, a
`liverseg: ...` line naming the file (or the config key) and the problem, no traceback
of the library, and no results file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_atlas, phantom, write_pair
from workflow_helpers import copy_workflow, run_snakemake, write_yaml

pytestmark = pytest.mark.slow

COHORT = "results/cohort/cohort.tsv"
BROKEN = 3  # the broken subject


def image_path(root, n=BROKEN):
    return root / "imagesTr" / f"im{n}.nii.gz"


def label_path(root, n=BROKEN):
    return root / "labelsTr" / f"lb{n}.nii.gz"


def info_path(root):
    return root / "patient_info_train.json"


def truncate(root):
    data = image_path(root).read_bytes()
    image_path(root).write_bytes(data[: len(data) // 2])


def shape_mismatch(root):
    image, label = phantom(seed=BROKEN)
    write_pair(root, BROKEN, image, label[:, :, :10].copy(), np.diag([0.8, 0.8, 3.0, 1]))


def affine_mismatch(root):
    image, label = phantom(seed=BROKEN)
    write_pair(
        root,
        BROKEN,
        image,
        label,
        np.diag([0.8, 0.8, 3.0, 1]),
        label_affine=np.diag([0.8, 0.8, 2.5, 1]),
    )


def label_value_3(root):
    image, label = phantom(seed=BROKEN)
    label[0, 0, 0] = 3
    write_pair(root, BROKEN, image, label, np.diag([0.8, 0.8, 3.0, 1]))


def float_labels(root):
    image, label = phantom(seed=BROKEN)
    label = label.astype(np.float32)
    label[label == 1] = 0.5  # a probability map saved as a label
    write_pair(root, BROKEN, image, label, np.diag([0.8, 0.8, 3.0, 1]))


def four_d_image(root):
    image, label = phantom(seed=BROKEN)
    write_pair(root, BROKEN, np.stack([image, image], axis=-1), label, np.diag([0.8, 0.8, 3.0, 1]))


def nan_voxels(root):
    image, label = phantom(seed=BROKEN)
    image[5, 5, 5] = np.nan
    write_pair(root, BROKEN, image, label, np.diag([0.8, 0.8, 3.0, 1]))


def missing_label(root):
    label_path(root).unlink()


def missing_phase(root):
    info = json.loads(info_path(root).read_text())
    del info[str(BROKEN)]
    info_path(root).write_text(json.dumps(info))


def empty_label(root):
    image, label = phantom(seed=BROKEN)
    write_pair(root, BROKEN, image, np.zeros_like(label), np.diag([0.8, 0.8, 3.0, 1]))


# (how to break the cohort, the file the message must name, what it must say)
CASES = {
    "truncated_nifti": (truncate, image_path, "cannot read NIfTI"),
    "shape_mismatch": (shape_mismatch, label_path, "shape (40, 40, 10) differs"),
    "affine_mismatch": (affine_mismatch, label_path, "affine differs"),
    "label_value_3": (label_value_3, label_path, "label values 3 outside {0, 1, 2}"),
    "float_labels": (float_labels, label_path, "label values 0.5 outside {0, 1, 2}"),
    "4d_image": (four_d_image, image_path, "4 dimensions"),
    "nan_voxels": (nan_voxels, image_path, "NaN"),
    "missing_label": (missing_label, label_path, "label file not found"),
    "missing_phase": (missing_phase, info_path, f"no entry for im{BROKEN}"),
    "empty_label": (empty_label, label_path, "label is empty"),
}


def written_results(work) -> list[str]:
    """Files under results/ other than logs (a failed job's log is expected)."""
    results = work / "results"
    return (
        sorted(
            p.relative_to(results).as_posix()
            for p in results.rglob("*")
            if p.is_file() and p.relative_to(results).parts[0] != "logs"
        )
        if results.exists()
        else []
    )


def liverseg_messages(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("liverseg: ")]


def run_cohort(work, root, *args):
    return run_snakemake(
        work,
        COHORT,
        "--cores",
        "1",
        "--config",
        f"dataset={{source: atlas, root: '{root}'}}",
        *args,
        timeout=300,
    )


def test_valid_cohort_is_read(tmp_path):
    """The control: the same cohort unbroken passes, so the failures below are the breakage's."""
    work = copy_workflow(tmp_path / "work")
    root = make_atlas(tmp_path / "train")
    run = run_cohort(work, root)
    assert run.returncode == 0, run.tail()
    assert len((work / COHORT).read_text().splitlines()) == 1 + 16


@pytest.mark.parametrize("case", CASES)
def test_broken_cohort_stops_with_clear_message(tmp_path, case):
    breaks, names, problem = CASES[case]
    work = copy_workflow(tmp_path / "work")
    root = make_atlas(tmp_path / "train")
    breaks(root)
    run = run_cohort(work, root)
    assert run.returncode != 0, run.tail()
    messages = liverseg_messages(run.output)
    assert len(messages) == 1, run.tail()
    assert str(names(root)) in messages[0] and problem in messages[0], messages[0]
    assert "Traceback" not in run.output, run.tail()
    assert written_results(work) == [], "a failed cohort stage wrote results"


# (config file contents, merged over config/config.yaml; how the one message starts, and
# what else it must say)
CONFIG_ERRORS = {
    "unknown_top_level_key": (
        {"trainnig": {"max_epochs": 3}},
        ["liverseg: config error: trainnig: unknown key (allowed: dataset, seed, ", "training, "],
    ),
    "unknown_nested_key": (
        {"training": {"max_epoch": 3}},
        [
            "liverseg: config error: training.max_epoch: unknown key (allowed: learning_rate, ",
            "max_epochs, ",
        ],
    ),
    "wrong_value": (
        {"training": {"max_epochs": 0}},
        ["liverseg: config error: training.max_epochs: 0 is less than the minimum of 1"],
    ),
    "ahnet_patch_size": (
        {"models": {"ahnet_tumor": {"network": "ahnet", "task": "tumor", "patch_size": [64, 64, 48]}}},
        ["liverseg: config error: models.ahnet_tumor.patch_size [64, 64, 48]", "AHNet rule"],
    ),
    # DynUNet's rule at the start, not in the training job after the data preparation
    "dynunet_patch_size": (
        {
            "models": {
                "dynunet_multiclass": {
                    "network": "dynunet",
                    "task": "multiclass",
                    "patch_size": [64, 64, 36],
                }
            }
        },
        [
            "liverseg: config error: models.dynunet_multiclass.patch_size [64, 64, 36]: axis 2 (36)",
            "DynUNet",
        ],
    ),
    "number_read_as_text": (
        {"training": {"learning_rate": "1e-3"}},
        [
            "liverseg: config error: training.learning_rate: '1e-3' is not of type 'number'",
            "write 1.0e-3",
        ],
    ),
    "nan": (
        {"training": {"learning_rate": float("nan")}},
        ["liverseg: config error: training.learning_rate: nan is not a finite number"],
    ),
    "infinite": (
        {"loss": {"margin": float("inf")}},
        ["liverseg: config error: loss.margin: inf is not a finite number"],
    ),
}


@pytest.mark.parametrize("case", CONFIG_ERRORS)
def test_config_error_stops_before_any_job(tmp_path, case):
    contents, fragments = CONFIG_ERRORS[case]
    work = copy_workflow(tmp_path / "work")
    root = make_atlas(tmp_path / "train")  # a valid cohort: only the config is wrong
    write_yaml(work / "bad.yaml", contents)
    run = run_cohort(work, root, "--configfile", "bad.yaml")
    assert run.returncode != 0, run.tail()
    messages = liverseg_messages(run.output)
    assert len(messages) == 1, run.tail()
    assert messages[0].startswith(fragments[0]) and all(f in messages[0] for f in fragments[1:]), messages[0]
    assert "Traceback" not in run.output and "Failed validating" not in run.output, run.tail()  # no schema dump
    assert not (work / "results").exists(), "a config error wrote results"
