"""The workflow on a real SLURM, through `--profile profiles/slurm`.

tests/slurm/setup.sh installs (apt-get) and starts a single-node SLURM on this machine:
munge, slurmctld and slurmd, one stand-in GPU through gres (File=/dev/null), no
accounting database. The module then runs one part of the tiny DAG
(tests/configs/tiny.yaml) twice, at the same time, in two private copies of the workflow:

- through SLURM with the project's profile (profiles/slurm): the predictions of
  ahnet_multiclass, i.e. the synthetic cohort, folds, boxes and patch sizes (one SLURM
  job: the profile's group `prepare`), then one GPU job each for the 2.5D encoder
  pretraining and the training of the three folds, and one for inference;
- locally (`--cores 1`), for reference.

and checks that the GPU jobs were submitted with a GPU request (the sbatch calls
Snakemake logs, and slurmctld's record of each job), that every job ran as a SLURM job
(a SLURM job id per job in Snakemake's log, each COMPLETED, each with its SLURM log),
and that the trained weights and the predicted probabilities are bit for bit those of
the local run. Both runs use one thread per job (threads: 1 in tiny.yaml, and
OMP_NUM_THREADS=1 for the jobs that do not set their torch threads), which makes the CPU
training deterministic.

Skipped only where apt-get is unavailable (tests/slurm/setup.sh installs Debian's
packages with it). The SLURM daemons are left running; setup.sh reuses them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from workflow_helpers import (
    REPO,
    TINY,
    copy_workflow,
    finish,
    job_stats,
    kill_group,
    start_snakemake,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SETUP = REPO / "tests" / "slurm" / "setup.sh"
PROFILE = REPO / "profiles" / "slurm"
MODEL = "ahnet_multiclass"
TARGET = f"results/predictions/{MODEL}"
FOLDS = (1, 2, 3)  # tiny.yaml: 3 folds
GPU_RULES = {"pretrain_encoder", "train", "predict"}
GROUP = "prepare"  # the profile's group of data-preparation rules: one SLURM job
GROUPED = {"synthesize", "cohort", "folds", "boxes", "patch_sizes"}
# what the target needs: every rule of it must have run, each job once
EXPECTED_JOBS = {
    "synthesize": 1,
    "cohort": 1,
    "folds": 1,
    "boxes": 1,
    "patch_sizes": 1,
    "pretrain_encoder": 3,
    "train": 3,
    "predict": 1,
}
# tiny.yaml's resources.gpu_job: threads 1 (= CPUs per GPU), runtime 10 min, mem_mb 2000
GPU_FLAGS = ("--gpus=1", "--cpus-per-gpu=1", "-t 10", "--mem 2000")
# One thread per job in both runs (train sets torch's threads from the rule's threads;
# pretraining and inference take torch's default, which OMP_NUM_THREADS sets).
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$", re.M)
SBATCH_CALL = re.compile(r"^sbatch call: (sbatch .*)$", re.M)


def _scontrol_job(job_id: str) -> dict[str, str]:
    """slurmctld's record of a job (kept MinJobAge=3600 s after it ends): key=value pairs."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, f"scontrol show job {job_id}: {out.stderr}"
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout))


def _cancel_jobs_under(folder: Path) -> None:
    """Cancel the SLURM jobs that this module submitted and that still exist (their work
    folder is under `folder`): a failed or timed-out run leaves no job behind."""
    out = subprocess.run(["squeue", "--noheader", "--format=%i %Z"], capture_output=True, text=True, timeout=30)
    for line in out.stdout.splitlines():
        job_id, _, workdir = line.strip().partition(" ")
        if workdir and Path(workdir).is_relative_to(folder):
            subprocess.run(["scancel", job_id], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node SLURM (tests/slurm/setup.sh); its output."""
    if shutil.which("apt-get") is None:
        pytest.skip(
            "apt-get is unavailable: tests/slurm/setup.sh installs Debian's slurm-wlm and munge with it, "
            "so no real SLURM can be set up on this machine"
        )
    command = ["bash", str(SETUP)]
    if os.geteuid() != 0 and shutil.which("sudo"):
        command = ["sudo", "-n", *command]
    setup = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert setup.returncode == 0, (
        f"tests/slurm/setup.sh failed (exit {setup.returncode}):\n{setup.stdout}\n{setup.stderr}"
    )
    return setup.stdout


@pytest.fixture(scope="module")
def runs(slurm_cluster, tmp_path_factory):
    """The target through SLURM and locally, at the same time: (slurm_work, slurm_run,
    local_work, local_run)."""
    root = tmp_path_factory.mktemp("slurm")
    local_work = copy_workflow(root / "local")
    slurm_work = copy_workflow(root / "slurm")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in THREAD_ENV.items():
            patch.setenv(name, value)
        local = start_snakemake(
            local_work,
            TARGET,
            "--cores",
            "1",
            "--configfile",
            TINY,
            log=local_work / "snakemake.out",
        )
        try:
            slurm = start_snakemake(
                slurm_work,
                TARGET,
                "--profile",
                str(PROFILE),
                "--configfile",
                TINY,
                # --verbose: Snakemake logs each sbatch call; a first status check after
                # 5 s instead of 40 s keeps the test short (MinJobAge=3600 keeps squeue's
                # answer valid)
                "--verbose",
                "--slurm-init-seconds-before-status-checks",
                "5",
                log=slurm_work / "snakemake.out",
            )
            try:
                slurm_run = finish(slurm, timeout=1200)
            finally:
                _cancel_jobs_under(root)
        except BaseException:
            kill_group(local)
            raise
        local_run = finish(local, timeout=1200)
    assert slurm_run.returncode == 0, slurm_run.tail(80)
    assert local_run.returncode == 0, local_run.tail(80)
    return slurm_work, slurm_run, local_work, local_run


def _submissions(output: str) -> dict[str, tuple[str, Path]]:
    """Snakemake's job (or group) id -> (SLURM job id, SLURM log) for every submission."""
    return {job: (slurm_id, Path(log)) for job, slurm_id, log in SUBMITTED.findall(output)}


def _submitted_as(comment: str) -> str:
    """The rule a SLURM job was submitted for (the plugin's --comment: rule_{rule} or
    rule_{rule}_wildcards_{...}), or GROUP for the group job (rule_{group}_{rules})."""
    comment = comment.strip("'\"")
    if comment.startswith(f"rule_{GROUP}_"):
        return GROUP
    return re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", comment).group(1)


def _rules_run_in(log: Path) -> set[str]:
    """The rules whose jobs Snakemake ran inside a SLURM job, from its SLURM log."""
    return set(re.findall(r"^\s*(?:local)?rule (\w+):$", log.read_text(), re.M))


def test_every_job_ran_under_slurm(runs):
    work, run, _, _ = runs
    assert job_stats(run.output) == EXPECTED_JOBS, run.tail(80)
    assert not re.search(r"^localrule ", run.output, re.M), "a job ran outside SLURM"
    submitted = _submissions(run.output)
    # one SLURM job for the group, one per GPU job
    assert len(submitted) == 1 + sum(n for rule, n in EXPECTED_JOBS.items() if rule in GPU_RULES), run.tail(80)
    assert len({slurm_id for slurm_id, _ in submitted.values()}) == len(submitted)
    ran: dict[str, int] = {}
    for slurm_id, log in submitted.values():
        record = _scontrol_job(slurm_id)  # slurmctld ran it, in the copy of the workflow
        assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
        assert Path(record["WorkDir"]).resolve() == work.resolve(), record
        # its SLURM log (profile: slurm-keep-successful-logs): Snakemake ran the job's
        # rules there, inside this SLURM job
        assert log.is_file() and log.is_relative_to(work / ".snakemake" / "slurm_logs"), log
        assert f"'SLURM_JOB_ID': '{slurm_id}'" in log.read_text(), log
        rules = _rules_run_in(log)
        expected = GROUPED if _submitted_as(record["Comment"]) == GROUP else {_submitted_as(record["Comment"])}
        assert rules == expected, (log, rules)
        for rule in rules:
            ran[rule] = ran.get(rule, 0) + 1
    assert ran == EXPECTED_JOBS
    assert (work / TARGET).is_dir()


def test_gpu_jobs_were_submitted_with_a_gpu_request(runs):
    work, run, _, _ = runs
    calls = SBATCH_CALL.findall(run.output)
    submitted_as = [_submitted_as(re.search(r"--comment (\S+)", call).group(1)) for call in calls]
    assert sorted(submitted_as) == sorted(
        [GROUP] + [r for r, n in EXPECTED_JOBS.items() if r in GPU_RULES for _ in range(n)]
    ), run.tail(80)
    for call, rule in zip(calls, submitted_as):
        padded = f" {call} "
        if rule in GPU_RULES:  # the profile: one GPU, the rule's threads as CPUs per GPU
            for flag in GPU_FLAGS:
                assert f" {flag} " in padded, (flag, call)
            assert "--cpus-per-task" not in call, call
        else:  # the group of CPU rules: no GPU; CPUs, memory and time of its jobs
            assert "--gpus" not in call and "--gres" not in call, call
            assert re.search(r" --cpus-per-task=\d+ .* --mem \d+ | --mem \d+ .* --cpus-per-task=\d+ ", padded), call
        assert " -A " not in padded, call  # slurm-no-account
    # slurmctld's side: what each job was given
    gpu_jobs = 0
    for slurm_id, _ in _submissions(run.output).values():
        record = _scontrol_job(slurm_id)
        gres = record.get("TresPerJob", "")
        if _submitted_as(record["Comment"]) in GPU_RULES:
            assert re.fullmatch(r"gres[:/]gpu:1", gres), record
            gpu_jobs += 1
        else:
            assert "gpu" not in gres, record
    assert gpu_jobs == sum(n for rule, n in EXPECTED_JOBS.items() if rule in GPU_RULES)


def _state_dict(path: Path) -> dict:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    return payload["state_dict"]


def test_outputs_equal_a_local_run(runs):
    slurm_work, _, local_work, _ = runs
    for fold in FOLDS:  # the trained weights, bit for bit
        relative = f"results/models/{MODEL}/fold{fold}/model.pt"
        ours, theirs = _state_dict(slurm_work / relative), _state_dict(local_work / relative)
        assert ours.keys() == theirs.keys(), relative
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), f"{relative}: {key} differs from the local run"
    # the predicted probabilities, bit for bit
    files = sorted(p.relative_to(slurm_work) for p in (slurm_work / TARGET).rglob("*.npz"))
    assert files == sorted(p.relative_to(local_work) for p in (local_work / TARGET).rglob("*.npz"))
    assert {p.parent.name for p in files} == {f"fold{k}" for k in FOLDS}
    for relative in files:
        with np.load(slurm_work / relative) as ours, np.load(local_work / relative) as theirs:
            assert ours.files == theirs.files
            for key in ours.files:
                a, b = ours[key], theirs[key]
                assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), (
                    f"{relative}: {key} differs from the local run"
                )
