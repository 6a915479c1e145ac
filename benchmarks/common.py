"""What the benchmarks share: timing, peak memory, the config files, the summary row.

Every benchmark module has `build_parser()` and `run(args) -> list of summary rows`, so
`run_all.py` runs them all in one process and writes one table; each also runs alone.
A summary row: the benchmark, what is measured, liverseg's figure, the peer's figure,
their ratio (> 1 means liverseg's side is better: faster, leaner, or, for the data
pipeline, patches produced faster than the model consumes them), the unit, and whether
the two sides' outputs agree.
"""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"demo": ROOT / "config" / "demo.yaml", "paper": ROOT / "config" / "config.yaml"}
OUT_DIR = Path("results/benchmarks")
SUMMARY_COLUMNS = [
    "benchmark",
    "measured",
    "liverseg",
    "peer",
    "peer_name",
    "ratio",
    "unit",
    "outputs_agree",
]


def load_config(name: str) -> dict:
    """config/demo.yaml ("demo") or config/config.yaml ("paper"), as written."""
    with open(CONFIGS[name]) as handle:
        return yaml.safe_load(handle)


def timed(fn, *args, repeat: int = 3):
    """fn(*args) once untimed (imports, caches, lookup tables), then `repeat` timed runs:
    (the warm-up's result, median seconds, best seconds)."""
    result = fn(*args)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        runs.append(time.perf_counter() - start)
    return result, statistics.median(runs), min(runs)


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark, in MiB.

    VmHWM, the peak of the process's own address space, where Linux has it: getrusage's
    ru_maxrss keeps, across exec, the RSS of the process that was forked, so a process
    spawned by a large parent would start at the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux (bytes on macOS)


def summary_row(
    benchmark: str,
    measured: str,
    ours: float,
    peer: float | None,
    peer_name: str,
    ratio: float | None,
    unit: str,
    agrees: bool | None = None,
) -> dict:
    return dict(
        benchmark=benchmark,
        measured=measured,
        liverseg=ours,
        peer=peer,
        peer_name=peer_name,
        ratio=ratio,
        unit=unit,
        outputs_agree=agrees,
    )


def exit_status(rows: list[dict]) -> int:
    """1 when a comparison's two sides disagree (None: nothing was compared)."""
    return 1 if any(r["outputs_agree"] is False for r in rows) else 0
