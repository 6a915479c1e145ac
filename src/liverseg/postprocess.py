"""The three-step post-processing of the paper (section 2.5), for both pipelines.

Step 1: keep the largest connected component of the whole liver and fill its holes.
Step 2: remove tumour lesions outside the liver (multi-class: a lesion is dropped when
        no liver voxel lies within `dilation_mm` of it; dual binary: tumour AND liver).
Step 3: close the remaining tumours (`closing_mm`) to smooth their borders.

Decisions the paper leaves open, and why:
- Connectivity: 26 for components (liver and lesions), with the 6-connected background
  that topology pairs with it for hole filling. On thick slices, diagonal neighbours
  across slices belong to the same structure; `lesions` labels with the same
  `arrays.CONNECTIVITY`, so a post-processed lesion is a lesion in the uncertainty table.
- Multi-class step 1 takes the largest component of the WHOLE liver (labels 1 and 2), so
  a large tumour that splits the parenchyma does not cut a lobe away. Liver voxels
  outside it are erased; tumour voxels outside it are left to step 2, which is the step
  that decides about tumours (otherwise step 2's dilation would never matter). Filled
  holes become liver (1); tumour voxels inside stay tumour.
- Step 2's radius is at least the voxel diagonal, so a lesion touching the liver is
  never removed, even when `dilation_mm` is below the voxel size.
- Step 3 is one closing of the whole tumour mask (nearby lesions may merge), and the
  voxels it adds are kept only inside the whole liver and only where they join a lesion:
  closing smooths tumours, it never grows the liver, recreates a tumour outside it, nor
  makes a lesion of its own. (Confined to the liver, the gains bridging a lesion outside
  it to the liver, or two lesions across background, can be cut off from the lesion they
  came from, and would be lesions of a few voxels with a tumour probability near 0:
  `grown_from` drops them.)
- Radii are physical (mm); with the voxel spacing they make ellipsoidal structuring
  elements (`structuring_element`). Morphology by an ellipsoid equals thresholding a
  Euclidean distance transform in mm, which is what runs here (the `edt` package, on
  the bounding box of the structures): the same result as scipy.ndimage's binary
  morphology with that element, at a fraction of the time for large radii.
"""

from __future__ import annotations

import edt
import numpy as np

from .arrays import RADIUS_SLACK, bounding_box, check_spacing, label_components, radius_margin
from .errors import InputError

# --------------------------------------------------------------------------- elements


def structuring_element(radius_mm: float, spacing) -> np.ndarray:
    """Boolean ellipsoid of the voxel offsets within `radius_mm` (physical distance).

    Its half-size along an axis is floor(radius / spacing): an axis whose spacing
    exceeds the radius keeps only the centre voxel, so thick slices are not bridged.
    """
    spacing = check_spacing(spacing)
    radius = _check_radius(radius_mm, "radius_mm")
    half = [int(np.floor(radius * (1 + RADIUS_SLACK) / s)) for s in spacing]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing)], indexing="ij")
    return sum(g * g for g in grids) <= (radius * (1 + RADIUS_SLACK)) ** 2


# --------------------------------------------------------------------------- pipelines


def postprocess_multiclass(seg: np.ndarray, spacing, *, dilation_mm: float, closing_mm: float) -> np.ndarray:
    """Post-process a 3-class segmentation (0 background, 1 liver, 2 tumour); uint8 out."""
    seg = _check_labels(seg)
    spacing = check_spacing(spacing)
    dilation_mm = _check_radius(dilation_mm, "dilation_mm")
    closing_mm = _check_radius(closing_mm, "closing_mm")

    # Step 1: largest component of the whole liver, holes filled; stray tumour kept for step 2.
    liver = fill_holes(largest_component(seg > 0))
    tumor = seg == 2
    out = liver.astype(np.uint8)
    out[tumor] = 2

    # Step 2: lesions with no liver voxel within the dilation radius are dropped.
    reach = max(dilation_mm, float(np.linalg.norm(spacing)))
    out[tumor & ~near_liver_lesions(tumor, out == 1, spacing, reach)] = 0

    # Step 3: closing of the remaining tumours, gains confined to the whole liver and to
    # the lesions they smooth.
    lesions = out == 2
    closed = close(lesions, spacing, closing_mm) & (lesions | (out == 1))
    out[grown_from(closed, lesions) & (out == 1)] = 2
    return out


def postprocess_dual_binary(liver: np.ndarray, tumor: np.ndarray, spacing, *, closing_mm: float) -> np.ndarray:
    """Post-process the two binary masks of the dual pipeline; 3-class uint8 labels out."""
    liver, tumor = _check_masks(liver, tumor)
    spacing = check_spacing(spacing)
    closing_mm = _check_radius(closing_mm, "closing_mm")
    liver = fill_holes(largest_component(liver))  # step 1
    tumor = tumor & liver  # step 2
    tumor = grown_from(close(tumor, spacing, closing_mm) & liver, tumor)  # step 3, inside the liver only
    return aggregate_dual_binary(liver, tumor)


def aggregate_dual_binary(liver: np.ndarray, tumor: np.ndarray) -> np.ndarray:
    """The 3-class map of the two binary outputs: 2 where the tumour model says tumour,
    1 where the liver model says liver and the tumour model does not, else 0.

    A tumour outside the liver mask stays 2: the raw stage keeps what the models said
    (the whole liver is then liver OR tumour); removing it is post-processing step 2.
    """
    liver, tumor = _check_masks(liver, tumor)
    out = liver.astype(np.uint8)
    out[tumor] = 2
    return out


# --------------------------------------------------------------------------- steps


def grown_from(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The connected components of `mask` that hold a voxel of `seeds`."""
    box = bounding_box(mask)
    out = np.zeros(mask.shape, bool)
    if box is None:
        return out
    labels, n = label_components(mask[box])
    out[box] = _components_of(labels, n, labels[seeds[box]])
    return out


def _components_of(labels: np.ndarray, n: int, held: np.ndarray) -> np.ndarray:
    """The mask of the components among `labels` (1..n, 0 background) named in `held`."""
    keep = np.zeros(n + 1, bool)
    keep[held] = True
    keep[0] = False
    return keep[labels]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of `mask` (all False if `mask` is empty).

    Ties go to the component met first in C order, so the result is deterministic.
    """
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)
    if box is None:
        return out
    labels, n = label_components(mask[box])
    if n == 1:
        out[box] = labels > 0
    else:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        out[box] = labels == int(np.argmax(sizes))
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` with its cavities filled: background not 6-connected to the outside.

    Same result as scipy.ndimage.binary_fill_holes (3D, default structure), computed as
    the background components of the padded bounding box.
    """
    box = bounding_box(mask)
    if box is None:
        return np.zeros(mask.shape, bool)
    padded = np.pad(~mask[box], 1, constant_values=True)
    labels, _ = label_components(padded, connectivity=6)
    inner = tuple(slice(1, -1) for _ in range(3))
    out = mask.copy()
    out[box] |= labels[inner] != labels[0, 0, 0]  # the padding shell is the outside
    return out


def near_liver_lesions(tumor: np.ndarray, liver: np.ndarray, spacing, reach_mm: float) -> np.ndarray:
    """The tumour voxels whose lesion (26-connected component) has a liver voxel within
    `reach_mm`; equivalently, lesions whose dilation by the ellipsoid of radius
    `reach_mm` intersects the liver."""
    out = np.zeros(tumor.shape, bool)
    margin = radius_margin(reach_mm, spacing)
    t_box, l_box = bounding_box(tumor), bounding_box(liver, margin=margin)
    if t_box is None or l_box is None:
        return out
    lesions, n = label_components(tumor[t_box])
    # Only tumour voxels in the liver's box widened by the reach can be near the liver,
    # and only liver voxels within the reach of those matter: the distance transform
    # runs on that box, wide enough to be exact where it is read.
    near = [slice(max(t.start, b.start), min(t.stop, b.stop)) for t, b in zip(t_box, l_box)]
    if any(s.stop <= s.start for s in near):
        return out
    box = tuple(slice(max(s.start - m, 0), min(s.stop + m, n_)) for s, m, n_ in zip(near, margin, tumor.shape))
    dist = edt.edt(np.ascontiguousarray(~liver[box]), anisotropy=spacing, black_border=False)
    inside = lambda outer: tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(near, outer))  # noqa: E731
    out[t_box] = _components_of(lesions, n, lesions[inside(t_box)][dist[inside(box)] <= reach_mm * (1 + RADIUS_SLACK)])
    return out


def close(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Binary closing by the ellipsoid of radius `radius_mm` (mm), on an unbounded grid.

    Dilation keeps the voxels within the radius of the mask, erosion those farther than
    the radius from the dilation's outside: both are distance-transform thresholds.
    """
    spacing = check_spacing(spacing)
    r = radius_mm * (1 + RADIUS_SLACK)
    tight = bounding_box(mask)
    if tight is None or all(s > r for s in spacing):
        return mask.copy()
    # The box widened by the radius and one voxel, padded with background where it
    # leaves the array: the dilation never reaches an edge, as on an infinite grid.
    margin = [m + 1 for m in radius_margin(radius_mm, spacing)]
    lo = [t.start - m for t, m in zip(tight, margin)]
    hi = [t.stop + m for t, m in zip(tight, margin)]
    box = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, mask.shape))
    pad = [(max(-a, 0), max(b - n, 0)) for a, b, n in zip(lo, hi, mask.shape)]
    sub = np.pad(mask[box], pad, constant_values=False)
    dilated = edt.edt(np.ascontiguousarray(~sub), anisotropy=spacing, black_border=False) <= r
    closed = edt.edt(np.ascontiguousarray(dilated), anisotropy=spacing, black_border=False) > r
    inner = tuple(slice(lo, closed.shape[a] - hi) for a, (lo, hi) in enumerate(pad))
    out = mask.copy()
    out[box] |= closed[inner]
    return out


# --------------------------------------------------------------------------- checks


def _check_radius(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a non-negative number of mm, got {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise InputError(f"{name}: expected a non-negative number of mm, got {value!r}")
    return value


def _check_labels(seg) -> np.ndarray:
    seg = np.asarray(seg)
    if seg.ndim != 3:
        raise InputError(f"segmentation: expected a 3D label volume, got shape {seg.shape}")
    if not (np.issubdtype(seg.dtype, np.integer) or np.issubdtype(seg.dtype, np.bool_)):
        if not np.all(np.mod(seg, 1) == 0):
            raise InputError(f"segmentation: labels must be integers 0, 1, 2 (dtype {seg.dtype})")
    if seg.size and (seg.min() < 0 or seg.max() > 2):
        raise InputError(f"segmentation: labels must be 0, 1 or 2, found values in [{seg.min()}, {seg.max()}]")
    return seg.astype(np.uint8, copy=False)


def _check_masks(liver, tumor) -> tuple[np.ndarray, np.ndarray]:
    liver, tumor = np.asarray(liver), np.asarray(tumor)
    for name, m in (("liver mask", liver), ("tumour mask", tumor)):
        if m.ndim != 3:
            raise InputError(f"{name}: expected a 3D volume, got shape {m.shape}")
    if liver.shape != tumor.shape:
        raise InputError(f"liver and tumour masks differ in shape: {liver.shape} vs {tumor.shape}")
    return liver.astype(bool, copy=False), tumor.astype(bool, copy=False)
