"""The torch device a user asks for, checked before any work, the CPU threads torch uses,
and the precision it computes in.

`torch.device("gpu")` raises a RuntimeError, and a CUDA device on a CPU-only build of
torch fails only at the first tensor moved there, after the models were read: both are
a user's request that cannot be served here, so both become one InputError up front.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from .config import schema_choices
from .errors import InputError

__all__ = ["PRECISIONS", "autocast_dtype", "autocast_for", "native_bfloat16", "setup_torch", "torch_device"]

# `training.precision` and `inference.precision` take the same values.
PRECISIONS = schema_choices("inference.precision")


def torch_device(name: str | torch.device | None = None) -> torch.device:
    """The device `name` names (None: CUDA when available, else the CPU).

    Raises InputError naming the request when torch does not know it, or cannot use it on
    this machine (CUDA on a CPU-only torch or without a GPU, a GPU index beyond the count).
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"device {str(name)!r}: not a device name torch knows; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no CUDA GPU visible"
            raise InputError(f"device {str(name)!r}: not available here ({build}); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {str(name)!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"device {str(name)!r}: not available here (no Apple GPU); use cpu")
    elif device.type != "cpu":
        raise InputError(f"device {str(name)!r}: not supported; use cpu, cuda or cuda:N")
    return device


def setup_torch(device: str | torch.device | None = None, threads: int | None = None) -> torch.device:
    """What every job does before its first tensor: check the device (`torch_device`) and
    give torch `threads` CPU threads (None: every CPU this process may use).

    The scheduler grants the threads (Snakemake's threads, SLURM's --cpus-per-gpu); torch's
    own default is the whole node's cores, which oversubscribes a shared node.
    """
    checked = torch_device(device)
    torch.set_num_threads(int(threads) if threads else _usable_cpus())
    return checked


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the CPUs this process is bound to
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype that autocast computes convolutions in on `device`; None: float32 throughout.

    "auto": float16 on CUDA (training scales its gradients); bfloat16 on a CPU with native
    bfloat16 instructions (AVX-512 BF16 or AMX), where an AHNet training step at 64x64x32
    takes 0.55-0.65 s instead of 1.0 s and a DynUNet's 0.35 s instead of 0.62 s
    (docs/performance.md); float32 on other CPUs, which only emulate bfloat16, and on Apple
    GPUs. "bfloat16" asks for it wherever torch can; "float32" turns autocast off.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: use one of {list(PRECISIONS)}")
    if precision == "float32" or device.type == "mps":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if native_bfloat16() else None


def autocast_for(device: torch.device, precision: str = "auto"):
    """The autocast context of `autocast_dtype` (a no-op context where it is None)."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@functools.cache
def native_bfloat16() -> bool:
    """Whether this machine's CPU computes in bfloat16 natively (Linux's CPU flags
    avx512_bf16 or amx_bf16). torch's own check (mkldnn bf16 support) also accepts plain
    AVX-512, which emulates it more slowly than float32."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
