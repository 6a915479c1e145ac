"""Checksums of model files: a damaged model.pt must not predict silently.

torch reads the tensors of a .pt archive without verifying them, so a file with bytes
flipped in its weights loads and predicts garbage. Training records a SHA-256 of the
weights and the spec beside them; loading recomputes it. The digest covers each tensor's
name, dtype, shape and raw bytes in name order, and the spec as canonical JSON, so it does
not depend on how torch laid out the archive.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import InputError, warn

__all__ = ["DIGEST_KEY", "model_digest", "verify_model_digest"]

DIGEST_KEY = "sha256"


def model_digest(state_dict: Mapping[str, torch.Tensor], spec: Mapping) -> str:
    """SHA-256 (hex) of the weights and spec of a model file."""
    digest = hashlib.sha256()
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"\n{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def verify_model_digest(payload: Mapping, path: Path) -> None:
    """InputError naming `path` when its weights or spec are not what training wrote;
    a one-line warning when the file predates checksums (loaded unverified)."""
    expected = payload.get(DIGEST_KEY)
    if expected is None:
        warn(f"{path}: no checksum (a model file from before liverseg recorded one); loaded unverified")
        return
    if model_digest(payload["state_dict"], payload["spec"]) != expected:
        raise InputError(
            f"{path}: checksum mismatch: the weights or spec changed since training wrote the file "
            "(a damaged copy?); copy or train it again"
        )
