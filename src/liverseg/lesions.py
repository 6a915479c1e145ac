"""Lesion-wise uncertainty (paper section 2.6) and its evaluation.

Each predicted tumour lesion (a connected component of label 2, with the connectivity of
the post-processing) gets an uncertainty score, 1 minus the mean tumour probability over
its voxels (paper eq. 1), and a status: TP when it overlaps the ground-truth tumour by
at least one voxel, FP otherwise (section 2.7). The scores are judged by how well they
tell FP from TP lesions (AUROC) and by their relation to lesion size (Spearman).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .errors import InputError
from .postprocess import bounding_box, check_spacing, label_components

COLUMNS = [
    "subject",
    "lesion",
    "voxels",
    "volume_mm3",
    "uncertainty",
    "status",
    "centroid_x",
    "centroid_y",
    "centroid_z",
]


def lesion_table(seg: np.ndarray, tumor_prob: np.ndarray, spacing, gt: np.ndarray | None, subject: str) -> pd.DataFrame:
    """One row per predicted tumour lesion of `seg` (columns: COLUMNS).

    `tumor_prob` is the tumour probability per voxel (same shape as `seg`); `gt` the
    ground-truth labels, or None (status then empty). Lesions are numbered 1..n in the
    order their first voxel is met in C order; centroids are in voxel coordinates.
    """
    seg, prob, spacing, gt = _check(seg, tumor_prob, spacing, gt, subject)
    box = bounding_box(seg == 2)
    if box is None:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in COLUMNS})
    lesions, n = label_components(seg[box] == 2)
    # Statistics over the lesion voxels only (sparse in a large box).
    coords = np.nonzero(lesions)
    ids = lesions[coords]
    count = lambda weights=None: np.bincount(ids, weights=weights, minlength=n + 1)[1:]  # noqa: E731
    voxels = count()
    prob_sum = count(prob[box][coords].astype(np.float64))
    centroids = [count(c.astype(np.float64)) / voxels + b.start for c, b in zip(coords, box)]
    if gt is None:
        status = [""] * n
    else:
        status = np.where(count((gt[box][coords] == 2).astype(np.float64)) > 0, "TP", "FP").tolist()
    return pd.DataFrame(
        {
            "subject": [subject] * n,
            "lesion": np.arange(1, n + 1),
            "voxels": voxels.astype(np.int64),
            "volume_mm3": voxels * float(np.prod(spacing)),
            "uncertainty": 1.0 - prob_sum / voxels,
            "status": status,
            "centroid_x": centroids[0],
            "centroid_y": centroids[1],
            "centroid_z": centroids[2],
        },
        columns=COLUMNS,
    )


def uncertainty_auroc(table: pd.DataFrame) -> float:
    """AUROC of the uncertainty for telling FP (positive) from TP lesions.

    The Mann-Whitney statistic over ranks (ties count one half): the probability that a
    random FP lesion is more uncertain than a random TP one. NaN without both classes.
    Rows with another status (e.g. empty, no ground truth) are ignored.
    """
    _require(table, ("uncertainty", "status"))
    fp = table.loc[table["status"] == "FP", "uncertainty"].to_numpy(float)
    tp = table.loc[table["status"] == "TP", "uncertainty"].to_numpy(float)
    if len(fp) == 0 or len(tp) == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([fp, tp]))  # average ranks for ties
    u = ranks[: len(fp)].sum() - len(fp) * (len(fp) + 1) / 2
    return float(u / (len(fp) * len(tp)))


def spearman(table: pd.DataFrame) -> tuple[float, float]:
    """Spearman's rho (and its p-value) between uncertainty and log lesion volume.

    NaN, NaN with fewer than 3 lesions or a constant column.
    """
    _require(table, ("uncertainty", "volume_mm3"))
    u = table["uncertainty"].to_numpy(float)
    v = table["volume_mm3"].to_numpy(float)
    if len(u) < 3 or np.ptp(u) == 0 or np.ptp(v) == 0:
        return float("nan"), float("nan")
    result = stats.spearmanr(u, np.log(v))
    return float(result.statistic), float(result.pvalue)


def _dtype(column: str) -> str:
    return {"subject": "object", "status": "object", "lesion": "int64", "voxels": "int64"}.get(column, "float64")


def _require(table: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"lesion table: missing column(s) {missing}")


def _check(seg, prob, spacing, gt, subject: str):
    seg, prob = np.asarray(seg), np.asarray(prob)
    if seg.ndim != 3:
        raise InputError(f"{subject}: segmentation must be 3D, got shape {seg.shape}")
    if prob.shape != seg.shape:
        raise InputError(f"{subject}: tumour probability shape {prob.shape} differs from segmentation {seg.shape}")
    if not np.issubdtype(prob.dtype, np.floating):
        raise InputError(f"{subject}: tumour probability must be floating point, got {prob.dtype}")
    if prob.size and not (np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1):
        raise InputError(f"{subject}: tumour probability must lie in [0, 1] (found NaN/inf or values outside)")
    if gt is not None:
        gt = np.asarray(gt)
        if gt.shape != seg.shape:
            raise InputError(f"{subject}: ground truth shape {gt.shape} differs from segmentation {seg.shape}")
    return seg, prob, check_spacing(spacing, f"{subject}: spacing"), gt
