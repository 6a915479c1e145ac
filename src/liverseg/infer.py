"""Whole-volume inference by Gaussian-weighted sliding windows (MONAI).

The image is normalised exactly as in training (`augment.normalise`, the evaluation
transform). A volume shorter than the patch along an axis is padded with its minimum
(the value training pads with, see `augment.EnsureMinimumShape`) and the prediction is
cropped back, so the output always has the input's shape. Overlapping windows are
blended with a Gaussian weight (MONAI `sliding_window_inference`), which down-weights
the borders of each patch where the network sees little context.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from .augment import normalise
from .devices import autocast_for
from .errors import InputError

BLEND_MODES = ("gaussian", "constant")


def model_device(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device


def sliding_window_logits(
    net: torch.nn.Module,
    image: np.ndarray,
    patch_size: Sequence[int],
    *,
    overlap: float,
    mode: str,
    sw_batch_size: int,
    device: torch.device | str | None = None,
    precision: str = "auto",
) -> torch.Tensor:
    """Blended network outputs (logits) for a raw image (H, W, D), the network in eval mode:
    a float32 tensor (1, C, H, W, D) on `device` (default: the network's device, where the
    network is moved).

    Args:
        net: the trained network (checkpoints.load_model).
        image: the raw image (H, W, D), normalised here as in training.
        patch_size: the window, the network's training patch size.
        overlap: windows' overlap in [0, 1) (`inference.overlap`).
        mode: "gaussian" or "constant" blending (`inference.mode`).
        sw_batch_size: windows per forward pass (`inference.sw_batch_size`).
        device: where the network runs (None: where it is).
        precision: what autocast computes in (`inference.precision`, devices.autocast_dtype):
            "auto" is float16 on CUDA, bfloat16 on a CPU with native bfloat16, else float32.

    Raises:
        InputError: a bad image, patch size, overlap, mode, batch size or precision.
    """
    was_training = net.training
    net.eval()
    try:
        window = dict(overlap=overlap, mode=mode, sw_batch_size=sw_batch_size, device=device, precision=precision)
        return blend_windows(net, image, patch_size, **window)
    finally:
        net.train(was_training)


def blend_windows(
    net: torch.nn.Module,
    image: np.ndarray,
    patch_size: Sequence[int],
    *,
    overlap: float,
    mode: str,
    sw_batch_size: int,
    device: torch.device | str | None = None,
    precision: str = "auto",
) -> torch.Tensor:
    """`sliding_window_logits` in the network's current mode, without gradients (in train
    mode, BatchNorm normalises each batch of `sw_batch_size` windows by its own statistics)."""
    patch_size = _check_patch_size(patch_size)
    if not 0 <= overlap < 1:
        raise InputError(f"inference overlap must be in [0, 1), got {overlap}")
    if mode not in BLEND_MODES:
        raise InputError(f"inference mode must be one of {list(BLEND_MODES)}, got {mode!r}")
    if int(sw_batch_size) < 1:
        raise InputError(f"inference sw_batch_size must be >= 1, got {sw_batch_size}")
    device = torch.device(device) if device is not None else model_device(net)
    net.to(device)
    data = normalise(image)
    tensor = torch.from_numpy(data)[None, None].to(device)

    def predictor(x: torch.Tensor) -> torch.Tensor:
        with autocast_for(device, precision):
            return net(x).float()

    with torch.no_grad():
        logits = sliding_window_inference(
            tensor,
            roi_size=patch_size,
            sw_batch_size=int(sw_batch_size),
            predictor=predictor,
            overlap=float(overlap),
            mode=mode,
            padding_mode="constant",
            cval=float(data.min()),
        )
    return logits.float()


def predict_volume(
    net: torch.nn.Module,
    image: np.ndarray,
    patch_size: Sequence[int],
    *,
    overlap: float,
    mode: str,
    sw_batch_size: int,
    device: torch.device | str | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Softmax probabilities (C, H, W, D), float32, for a raw image (H, W, D); arguments as
    `sliding_window_logits`."""
    window = dict(overlap=overlap, mode=mode, sw_batch_size=sw_batch_size, device=device, precision=precision)
    logits = sliding_window_logits(net, image, patch_size, **window)
    return torch.softmax(logits, dim=1)[0].cpu().numpy()


def _check_patch_size(patch_size: Sequence[int]) -> tuple[int, int, int]:
    size = tuple(int(s) for s in patch_size)
    if len(size) != 3 or min(size) < 1:
        raise InputError(f"patch size must be three positive integers, got {list(patch_size)}")
    return size
