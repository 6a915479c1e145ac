"""Faults survived through Snakemake, with nothing lost (issue 6, section 3).

- An interrupted `snakemake` (Ctrl-C: SIGINT to its process group, jobs included): the
  rerun with `--rerun-incomplete` completes, and nothing that was complete is recomputed.
- SIGTERM to a training job's process (what SLURM sends at preemption or the time
  limit): the job exits non-zero leaving checkpoint.pt, and the rerun resumes from it.
- A corrupt checkpoint: a clear error naming the file; nothing is overwritten, and no
  silent restart from scratch.

The library-level behaviour (resume equals an uninterrupted run, damaged checkpoints) is
in test_train.py; these tests go through the workflow. They share one copy of the
workflow on the tiny synthetic cohort, whose first steps (synthesize .. patch sizes) run
once; the training jobs are DynUNet's (no encoder pretraining), four short epochs each.
The SIGTERM, corrupt-checkpoint and resume tests run in that order on one stopped job.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch
from workflow_helpers import (
    TINY,
    copy_workflow,
    finish,
    job_processes,
    job_stats,
    kill_group,
    planned_jobs,
    run_snakemake,
    snapshot,
    start_snakemake,
    wait_for,
    write_yaml,
)

pytestmark = pytest.mark.slow

MODEL = "dynunet_multiclass"  # needs no pretrained encoder: the cheapest training job
EPOCHS = 4
# Long enough to be caught mid-training after an epoch's checkpoint; no early stop.
FAULTS_CONFIG = {"training": {"max_epochs": EPOCHS, "patience": 10, "iterations_per_epoch": 3}}
ARGS = ("--cores", "1", "--configfile", TINY, "faults.yaml")  # one job at a time
TRAIN_TIMEOUT = 900  # seconds, for one training job on a loaded 2-core machine


def model_dir(fold: int) -> str:
    return f"results/models/{MODEL}/fold{fold}"


def target(fold: int) -> str:
    return f"{model_dir(fold)}/model.pt"


def checkpoint_epoch(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["epoch"]


def finished_outputs(folder: Path) -> list[str]:
    """The training job's outputs present in `folder`: none unless it finished."""
    return [name for name in ("model.pt", "history.tsv", "curves.png") if (folder / name).exists()]


def train_log(work: Path, fold: int) -> Path:
    return work / f"results/logs/train/{MODEL}/fold{fold}.log"


def log_lines(path: Path) -> list[str]:
    """The log without tqdm's progress bars."""
    return [
        line for line in path.read_text().replace("\r", "\n").splitlines() if line.startswith(("[train]", "liverseg"))
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A workflow copy whose cohort, folds and patch sizes exist."""
    work = copy_workflow(tmp_path_factory.mktemp("faults"))
    write_yaml(work / "faults.yaml", FAULTS_CONFIG)
    run = run_snakemake(work, "results/cohort/folds.json", "results/analysis/patch_sizes.json", *ARGS)
    assert run.returncode == 0, run.tail()
    return work


def test_interrupted_snakemake_reruns_only_the_incomplete_job(workdir):
    """Ctrl-C while the second of two training jobs trains (--cores 1 runs them in turn).

    Synchronised on files, not on time: the signal goes once the other fold's model exists
    and this job's first epoch's checkpoint does, i.e. EPOCHS - 1 epochs (and the writing
    of its outputs) before the job could finish, however slow the machine.
    """
    folds = (2, 3)
    targets = [target(fold) for fold in folds]
    process = start_snakemake(workdir, *targets, *ARGS, log=workdir / "interrupted.out")
    try:
        mid_training = wait_for(
            lambda: [
                f
                for f in folds
                if (workdir / model_dir(f) / "checkpoint.pt").exists()
                and all((workdir / target(other)).exists() for other in folds if other != f)
            ],
            2 * TRAIN_TIMEOUT,
            "the first model and the second job's first checkpoint",
            process,
        )
        jobs = job_processes(process, "train.py")
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: snakemake and its jobs
        run = finish(process, 300)
    finally:
        kill_group(process)

    (interrupted,) = mid_training
    folder = workdir / model_dir(interrupted)
    assert run.returncode != 0, run.tail()
    assert len(jobs) == 1, jobs
    assert not any(job.is_running() and job.status() != "zombie" for job in jobs), "a job outlived snakemake"
    assert not finished_outputs(folder), f"the interrupted job left outputs: {finished_outputs(folder)}"
    assert not [p.name for p in folder.glob(".*")], "half-written files left behind"
    epoch = checkpoint_epoch(folder / "checkpoint.pt")
    assert 1 <= epoch < EPOCHS
    (finished,) = set(folds) - {interrupted}
    before = snapshot(workdir / "results")
    assert f"models/{MODEL}/fold{finished}/model.pt" in before and "cohort/cohort.tsv" in before
    # The interrupted job's checkpoint is not an output: the rerun resumes from it, then removes it.
    before = {path: mtime for path, mtime in before.items() if not (workdir / "results" / path).is_relative_to(folder)}

    rerun = run_snakemake(workdir, *targets, *ARGS, "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.tail()
    assert job_stats(rerun.output) == {"train": 1}, rerun.tail()
    assert [j["wildcards"]["fold"] for j in planned_jobs(rerun.output)] == [str(interrupted)]
    relative = (folder / "checkpoint.pt").relative_to(workdir).as_posix()
    assert f"[train] resuming from {relative} after epoch {epoch}" in log_lines(train_log(workdir, interrupted))
    after = snapshot(workdir / "results")
    changed = sorted(path for path, mtime in before.items() if after.get(path) != mtime)
    assert not changed, f"complete outputs recomputed or removed: {changed}"
    assert all((workdir / t).exists() for t in targets)


@pytest.fixture(scope="module")
def stopped(workdir):
    """A training job under snakemake stopped by SIGTERM after its first epoch."""
    fold = 1
    checkpoint = workdir / model_dir(fold) / "checkpoint.pt"
    process = start_snakemake(workdir, target(fold), *ARGS, log=workdir / "sigterm.out")
    try:
        wait_for(checkpoint.exists, TRAIN_TIMEOUT, "the first epoch's checkpoint", process)
        jobs = job_processes(process, "train.py")
        assert len(jobs) == 1, jobs
        jobs[0].send_signal(signal.SIGTERM)
        run = finish(process, 300)
    finally:
        kill_group(process)
    return {
        "fold": fold,
        "run": run,
        "checkpoint": checkpoint,
        "saved": checkpoint.read_bytes(),
        "log": log_lines(train_log(workdir, fold)),
    }


def test_sigterm_to_training_job_leaves_checkpoint(workdir, stopped):
    run, checkpoint = stopped["run"], stopped["checkpoint"]
    assert run.returncode != 0, run.tail()
    assert "exit status 143" in run.output, run.tail()  # the job's own status: 128 + SIGTERM
    assert any("SIGTERM: stopped" in line and "checkpoint.pt" in line for line in stopped["log"]), stopped["log"]
    assert checkpoint.is_file()
    assert 1 <= checkpoint_epoch(checkpoint) < EPOCHS
    outputs = finished_outputs(checkpoint.parent)
    assert not outputs, f"a stopped job left outputs: {outputs}"


def test_corrupt_checkpoint_stops_with_clear_error(workdir, stopped):
    checkpoint, fold = stopped["checkpoint"], stopped["fold"]
    assert not (workdir / target(fold)).exists(), "run before test_rerun_resumes_from_checkpoint"
    truncated = stopped["saved"][: len(stopped["saved"]) // 2]
    checkpoint.write_bytes(truncated)
    before = snapshot(workdir / "results")
    try:
        run = run_snakemake(workdir, target(fold), *ARGS)
        assert run.returncode != 0, run.tail()
        relative = checkpoint.relative_to(workdir).as_posix()
        messages = [line for line in run.output.splitlines() if line.startswith("liverseg: ")]
        assert messages and relative in messages[0] and "cannot read checkpoint" in messages[0], run.tail()
        assert checkpoint.read_bytes() == truncated, "the corrupt checkpoint was replaced"
        assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["checkpoint.pt"], "training restarted"
        assert snapshot(workdir / "results") == before
    finally:
        checkpoint.write_bytes(stopped["saved"])


def test_rerun_resumes_from_checkpoint(workdir, stopped):
    fold, checkpoint = stopped["fold"], stopped["checkpoint"]
    assert checkpoint.read_bytes() == stopped["saved"]
    epoch = checkpoint_epoch(checkpoint)
    run = run_snakemake(workdir, target(fold), *ARGS)
    assert run.returncode == 0, run.tail()
    lines = log_lines(train_log(workdir, fold))
    relative = checkpoint.relative_to(workdir).as_posix()
    assert f"[train] resuming from {relative} after epoch {epoch}" in lines, lines
    trained = [line for line in lines if line.startswith("[train] epoch ")]
    assert [line.split(":")[0] for line in trained] == [f"[train] epoch {e}" for e in range(epoch + 1, EPOCHS + 1)]
    history = pd.read_csv(workdir / model_dir(fold) / "history.tsv", sep="\t")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))  # the resumed run kept the first epochs
    assert not checkpoint.exists()  # training.keep_checkpoint: false
