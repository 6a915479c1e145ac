"""Helpers on 3D arrays that the science modules share: bounding boxes, crops with a zero
margin, margins that hold a radius in mm, spacing checks and connected components.

Connectivity is 26 for every component (liver, lesions) so that a post-processed lesion
is a lesion in the uncertainty table and in the figures; hole filling uses the
6-connected background that topology pairs with it (`postprocess.fill_holes`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import numpy as np

from .errors import InputError

__all__ = [
    "CONNECTIVITY",
    "RADIUS_SLACK",
    "bounding_box",
    "check_spacing",
    "crop_with_margin",
    "label_components",
    "radius_margin",
]

CONNECTIVITY = 26
RADIUS_SLACK = 1e-5  # relative slack on radii: offsets exactly at the radius count as inside


def bounding_box(*volumes: np.ndarray, margin: Sequence[int] = (0, 0, 0)) -> tuple[slice, ...] | None:
    """Smallest box holding every non-zero voxel of the 3D volumes (all of one shape),
    widened by `margin` voxels per axis and clipped to the array; None if all are empty.

    Two contiguous max-reductions per volume (over the last two axes, then over the first);
    numpy's any() along a short last axis is several times slower.
    """
    rows, plane = None, None
    for v in volumes:
        if v.dtype == bool:
            v = v.view(np.uint8)
        elif not np.issubdtype(v.dtype, np.unsignedinteger):
            v = (v != 0).view(np.uint8)
        r, p = v.reshape(v.shape[0], -1).max(axis=1), v.max(axis=0)
        rows, plane = (r, p) if rows is None else (np.maximum(rows, r), np.maximum(plane, p))
    hits = [np.flatnonzero(rows), np.flatnonzero(plane.max(axis=1)), np.flatnonzero(plane.max(axis=0))]
    if hits[0].size == 0:
        return None
    shape = volumes[0].shape
    return tuple(slice(max(int(h[0]) - m, 0), min(int(h[-1]) + 1 + m, n)) for h, m, n in zip(hits, margin, shape))


def crop_with_margin(volume: np.ndarray, box: tuple[slice, ...], margin: Sequence[int]) -> np.ndarray:
    """The box of `volume`, surrounded by `margin` zeros per axis (outside the box all is zero)."""
    inner = volume[box]
    out = np.zeros(tuple(n + 2 * m for n, m in zip(inner.shape, margin)), dtype=volume.dtype)
    out[tuple(slice(m, m + n) for n, m in zip(inner.shape, margin))] = inner
    return out


def radius_margin(radius_mm: float, spacing: Sequence[float]) -> list[int]:
    """Voxels per axis that hold every offset within `radius_mm` (with RADIUS_SLACK), plus one."""
    return [int(np.ceil(radius_mm * (1 + RADIUS_SLACK) / s)) + 1 for s in spacing]


def check_spacing(spacing, what: str = "spacing") -> tuple[float, float, float]:
    """Three positive finite numbers (mm), or InputError naming `what`."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise InputError(f"{what}: expected three positive numbers (mm), got {spacing!r}")
    return values


def label_components(mask: np.ndarray, connectivity: int = CONNECTIVITY) -> tuple[np.ndarray, int]:
    """The connected components of a boolean mask, numbered 1..n in the order their first
    voxel is met in C order, and n."""
    # As uint8 (a zero-copy view): cc3d 4.1 fails on some boolean masks one voxel wide
    # (e.g. 1x1x3, [1, 0, 1]) under 26-connectivity; its uint8 path labels them right.
    return cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=bool).view(np.uint8),
        connectivity=connectivity,
        return_N=True,
    )
