"""The files training writes: the resumable checkpoint and the trained model.

- `model.pt` (MODEL_FORMAT): the weights of the lowest validation loss and the spec that
  rebuilds their network (network, task, out_channels, class_names, patch_size,
  ahnet_cfg, dynunet_cfg, median_spacing; and best_epoch, best_val_loss, epochs), with a
  checksum of both (checksums.py). What inference reads: this module imports nothing of
  training, so inference never does.
- `checkpoint.pt` (CHECKPOINT_FORMAT): everything a run needs to continue after its last
  completed epoch: weights, optimiser, gradient scaler, the weight average where training
  keeps one (weight_average.py), the `TrainingState`, and the
  states of torch's, NumPy's and Python's random generators, so that a resumed run draws
  what an uninterrupted one would. It records the fingerprint of the setup it was
  written for; one written for another setup, or one that cannot be read, is an
  InputError, never silently replaced.

Both are read with `torch.load(weights_only=True)`: they hold only tensors and plain
Python values, and loading one must never run code.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .checksums import DIGEST_KEY, model_digest, verify_model_digest
from .devices import torch_device
from .errors import InputError
from .io import atomic_path

if TYPE_CHECKING:  # inference reads model.pt through this module: it imports no training code
    from .weight_average import WeightAverage

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "MODEL_FORMAT",
    "TrainingState",
    "cpu_copy",
    "load_checkpoint",
    "load_model",
    "network_from_spec",
    "save_checkpoint",
    "write_model",
]

MODEL_FORMAT = "liverseg.model/1"
CHECKPOINT_FORMAT = "liverseg.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainingState:
    """What changes from epoch to epoch, saved in the checkpoint."""

    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict | None = None
    since_best: int = 0
    history: list | None = None


def network_from_spec(spec: Mapping) -> torch.nn.Module:
    """The network a spec describes, with freshly initialised weights."""
    from .nets import build_network

    return build_network(
        spec["network"],
        spec["out_channels"],
        spec["patch_size"],
        ahnet_cfg=spec["ahnet_cfg"],
        dynunet_cfg=spec["dynunet_cfg"],
        median_spacing=spec["median_spacing"],
    )


def load_model(path: str | os.PathLike, device: str | torch.device | None = None) -> tuple[torch.nn.Module, dict]:
    """The trained network of a model.pt, in eval mode on `device` (None: CUDA when
    available), and its spec (network, task, out_channels, class_names, patch_size,
    ahnet_cfg, dynunet_cfg, median_spacing, best_epoch, best_val_loss, epochs).

    Raises InputError naming the file when it is missing, unreadable, not a model file,
    fails its checksum or holds weights that do not fit its spec."""
    path = Path(path)
    payload = _torch_load(path, "model")
    if payload.get("format") != MODEL_FORMAT or "state_dict" not in payload or "spec" not in payload:
        raise InputError(f"{path}: not a liverseg model file (format {payload.get('format')!r})")
    verify_model_digest(payload, path)
    device = torch_device(device)
    spec = dict(payload["spec"])
    net = network_from_spec(spec)
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not fit the network its spec describes ({exc})") from exc
    return net.to(device).eval(), spec


def write_model(path: Path, spec: dict, state: TrainingState) -> None:
    """model.pt: the best weights of `state`, the spec with the run's summary, a checksum."""
    spec = {
        **spec,
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_loss,
        "epochs": state.epoch,
    }
    payload = {
        "format": MODEL_FORMAT,
        "state_dict": state.best_state,
        "spec": spec,
        DIGEST_KEY: model_digest(state.best_state, spec),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def save_checkpoint(
    path: Path, fingerprint: dict, net, optimizer, scaler, state: TrainingState, average: WeightAverage | None = None
) -> None:
    """checkpoint.pt, written atomically, with the random generators' current states and,
    where training averages its weights, the average."""
    # An epoch that improved saves its kept weights once: torch.save writes a shared tensor
    # once (an AHNet's weights are a third of the checkpoint), and loading shares it again.
    kept = state.best_state if state.best_epoch == state.epoch else None
    payload = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "epoch": state.epoch,
        "model": kept if kept is not None and average is None else net.state_dict(),
        "average": None if average is None else average.state_dict(kept),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "best_loss": state.best_loss,
        "best_epoch": state.best_epoch,
        "best_state": state.best_state,
        "since_best": state.since_best,
        "history": state.history,
        "rng": _rng_states(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(
    path: Path, fingerprint: dict, net, optimizer, scaler, average: WeightAverage | None = None
) -> TrainingState:
    """Restore `net`, `optimizer`, `scaler`, `average` (where given) and the random
    generators from checkpoint.pt; return its TrainingState.

    Raises InputError when the file cannot be read, was written for another fingerprint
    (naming what changed) or is damaged; each message says to delete it to start over."""
    payload = _torch_load(path, "checkpoint")
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a liverseg checkpoint (format {payload.get('format')!r})")
    saved = payload.get("fingerprint", {})
    changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if changed:
        detail = ", ".join(changed)
        if "training" in changed:
            keys = set(saved.get("training", {})) | set(fingerprint["training"])
            detail += (
                " ("
                + ", ".join(
                    sorted(k for k in keys if saved.get("training", {}).get(k) != fingerprint["training"].get(k))
                )
                + ")"
            )
        raise InputError(f"{path}: written for a different setup ({detail} changed); delete it to train from scratch")
    try:
        net.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        if scaler.is_enabled() and payload["scaler"]:
            scaler.load_state_dict(payload["scaler"])
        if average is not None:
            average.load_state_dict(payload["average"])
        state = TrainingState(
            epoch=int(payload["epoch"]),
            best_loss=float(payload["best_loss"]),
            best_epoch=int(payload["best_epoch"]),
            best_state=payload["best_state"],
            since_best=int(payload["since_best"]),
            history=list(payload["history"]),
        )
        _set_rng_states(payload["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise InputError(
            f"{path}: damaged checkpoint ({type(exc).__name__}: {exc}); delete it to train from scratch"
        ) from exc
    return state


def cpu_copy(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of a state dict on the CPU, apart from the network's further updates."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}


def _torch_load(path: Path, what: str) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        hint = "; delete it to train from scratch" if what == "checkpoint" else ""
        reason = (str(exc).strip().splitlines() or [""])[0][:200]  # torch's messages run to pages
        raise InputError(f"{path}: cannot read {what} ({type(exc).__name__}: {reason}){hint}") from exc
    if not isinstance(payload, dict):
        raise InputError(f"{path}: not a liverseg {what} file")
    return payload


def _rng_states() -> dict:
    """RNG states as tensors and plain values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [
            name,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
