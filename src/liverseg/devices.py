"""The torch device a user asks for, checked before any work, and the CPU threads torch uses.

`torch.device("gpu")` raises a RuntimeError, and a CUDA device on a CPU-only build of
torch fails only at the first tensor moved there, after the models were read: both are
a user's request that cannot be served here, so both become one InputError up front.
"""

from __future__ import annotations

import os

import torch

from .errors import InputError

__all__ = ["setup_torch", "torch_device"]


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
