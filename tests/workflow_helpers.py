"""Helpers for the workflow-level tests (test_workflow, test_faults, test_bad_input).

Each test runs Snakemake as a subprocess in a private copy of the workflow (Snakefile,
workflow/, config/, envs/, tests/configs/) in a temporary folder, so `results/` and
`.snakemake/` are the copy's own and the checkout's are never touched. Every run gets
its own process group, so a test that times out or fails leaves no job behind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "envs", "tests/configs")
TINY = "tests/configs/tiny.yaml"  # the smallest whole DAG (merged over config/config.yaml)
CORES = 2


def copy_workflow(dest: Path) -> Path:
    """A runnable copy of the workflow in `dest` (created); returns `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def write_yaml(path: Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snakemake_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *map(str, args)]


@dataclass
class Run:
    args: list[str]
    returncode: int
    output: str  # stdout and stderr together
    seconds: float

    def tail(self, lines: int = 60) -> str:
        return f"snakemake {' '.join(self.args)} -> exit {self.returncode}\n" + "\n".join(
            self.output.splitlines()[-lines:]
        )


def _environment() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_snakemake(workdir: Path, *args: str, log: Path | None = None) -> subprocess.Popen:
    """Snakemake in the background, in its own process group, output to `log`."""
    log = Path(log or Path(workdir) / "snakemake.out")
    handle = open(log, "w")
    try:
        process = subprocess.Popen(
            snakemake_command(*args),
            cwd=workdir,
            env=_environment(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_interruptible,
        )
    finally:
        handle.close()
    process.log_path = log  # type: ignore[attr-defined]
    return process


def _interruptible() -> None:
    """Ctrl-C reaches snakemake as in a terminal, even when the tests were started in the
    background (`make test &`), whose shell makes its children ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_group(process: subprocess.Popen) -> None:
    """End what a test started: the snakemake process and every job it spawned."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def finish(process: subprocess.Popen, timeout: float) -> Run:
    """Wait for a started snakemake; kill its group if it outlives `timeout`."""
    start = time.monotonic()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise AssertionError(f"snakemake ran past {timeout} s:\n{Path(process.log_path).read_text()[-5000:]}") from None
    return Run(
        list(process.args[3:]),
        process.returncode,
        Path(process.log_path).read_text(),
        time.monotonic() - start,
    )


def run_snakemake(workdir: Path, *args: str, timeout: float = 600) -> Run:
    """Run snakemake in `workdir` to the end; returns its exit status and output."""
    workdir = Path(workdir)
    start = time.monotonic()
    process = start_snakemake(workdir, *args, log=workdir / f"snakemake.{time.time_ns()}.out")
    run = finish(process, timeout)
    run.seconds = time.monotonic() - start
    return run


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    process: subprocess.Popen | None = None,
    poll: float = 0.2,
):
    """Poll `condition` until it returns something true; fail after `timeout` seconds, or
    as soon as `process` (a started snakemake) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"snakemake exited ({process.returncode}) before {what}:\n{Path(process.log_path).read_text()[-5000:]}"
            )
        time.sleep(poll)
    if process is not None:
        kill_group(process)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def job_processes(process: subprocess.Popen, script: str) -> list:
    """The live processes under a snakemake run whose command line runs `script`
    (Snakemake runs a rule's `script:` as `python .snakemake/scripts/tmpXXXX.<script>`)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if any(part.endswith(script) for part in child.cmdline()):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (rule -> number of jobs) from a run's output; {} if
    it planned nothing."""
    match = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\n\s*\n", output, re.S)
    if not match:
        return {}
    stats = {}
    for line in match.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            stats[parts[0]] = int(parts[1])
    stats.pop("total", None)
    return stats


def planned_jobs(output: str) -> list[dict]:
    """The job blocks Snakemake prints (a dry run or a run): rule, input (paths),
    wildcards, resources."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", output):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        if not head:
            continue
        job = {"rule": head.group(1), "input": [], "wildcards": {}, "resources": {}}
        for line in block.splitlines()[1:]:
            key, _, value = line.strip().partition(": ")
            if line.startswith("    ") and key == "input":
                job["input"] = value.split(", ")
            if not line.startswith("    ") or key not in ("wildcards", "resources"):
                continue
            for item in value.split(", "):
                name, _, setting = item.partition("=")
                job[key][name.strip()] = setting.strip()
        jobs.append(job)
    return jobs


def snapshot(root: Path, skip: tuple[str, ...] = ("logs", "benchmarks")) -> dict[str, int]:
    """Every file under `root` (results/) with its mtime in ns, minus the logs and
    benchmarks that every run appends to."""
    root = Path(root)
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] not in skip:
            found[relative.as_posix()] = path.stat().st_mtime_ns
    return found
