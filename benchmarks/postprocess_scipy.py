"""The paper's post-processing as the plain composition of scipy.ndimage operations.

The reference `liverseg.postprocess` is tested against (tests/test_postprocess.py) and
timed against (benchmarks/bench_postprocess.py): same steps, same decisions (see that
module), written the obvious way: labelling of the whole volume, one dilation by the
ellipsoid per lesion, scipy's closing on a padded copy. Slow on full-size volumes (every
lesion dilates the whole array); outside the package, as the workflow never runs it
(pytest finds it through `pythonpath` in pyproject.toml).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from liverseg.boxes import STRUCTURE_26
from liverseg.postprocess import structuring_element


def largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask, STRUCTURE_26)
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def grown_from(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    lab, _ = ndimage.label(mask, STRUCTURE_26)
    return np.isin(lab, np.unique(lab[seeds & mask])) & (lab > 0)


def closing(mask: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Closing by `se` as on an unbounded grid: scipy's zero border would erode the edges."""
    pad = [(h // 2 + 1,) * 2 for h in se.shape]
    closed = ndimage.binary_closing(np.pad(mask, pad), se)
    return closed[tuple(slice(p, -p) for p, _ in pad)]


def multiclass(seg: np.ndarray, spacing, dilation_mm: float, closing_mm: float) -> np.ndarray:
    """postprocess.postprocess_multiclass, step by step with scipy.ndimage."""
    liver = ndimage.binary_fill_holes(largest_component(seg > 0))
    tumor = seg == 2
    out = liver.astype(np.uint8)
    out[tumor] = 2
    se = structuring_element(max(dilation_mm, float(np.linalg.norm(spacing))), spacing)
    lesions, n = ndimage.label(tumor, STRUCTURE_26)
    for k in range(1, n + 1):
        if not (ndimage.binary_dilation(lesions == k, se) & (out == 1)).any():
            out[lesions == k] = 0
    lesions = out == 2
    closed = closing(lesions, structuring_element(closing_mm, spacing)) & (lesions | (out == 1))
    out[grown_from(closed, lesions) & (out == 1)] = 2
    return out


def dual_binary(liver: np.ndarray, tumor: np.ndarray, spacing, closing_mm: float) -> np.ndarray:
    """postprocess.postprocess_dual_binary, step by step with scipy.ndimage."""
    liver = ndimage.binary_fill_holes(largest_component(liver))
    tumor = tumor & liver
    tumor = grown_from(closing(tumor, structuring_element(closing_mm, spacing)) & liver, tumor)
    out = liver.astype(np.uint8)
    out[tumor] = 2
    return out
