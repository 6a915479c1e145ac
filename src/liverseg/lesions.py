"""Lesion-wise uncertainty (paper section 2.6) and its evaluation.

Each predicted tumour lesion (a connected component of label 2, with the connectivity of
the post-processing) gets an uncertainty score, 1 minus the mean tumour probability over
its voxels (paper eq. 1), and a status: TP when it overlaps the ground-truth tumour by
at least one voxel, FP otherwise (section 2.7). The scores are judged by how well they
tell FP from TP lesions (AUROC) and by their relation to lesion size (Spearman).

Seen from the ground truth (beyond the paper): each true lesion (a component of label 2
of the labels) is detected when a predicted tumour voxel falls inside it, the TP rule
read the other way; detection recall is counted by lesion size, the diameter of the
sphere of the lesion's volume (docs/protocol.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .arrays import bounding_box, check_spacing, label_components
from .errors import InputError

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

TRUTH_COLUMNS = ["subject", "lesion", "voxels", "volume_mm3", "diameter_mm", "detected"]
# Lesion sizes the detection table counts apart (mm, equivalent-sphere diameter).
SIZE_BINS = ((0.0, 10.0), (10.0, 20.0), (20.0, math.inf), (10.0, math.inf))


def lesion_table(seg: np.ndarray, tumor_prob: np.ndarray, spacing, gt: np.ndarray | None, subject: str) -> pd.DataFrame:
    """One row per predicted tumour lesion of `seg` (columns: COLUMNS).

    `tumor_prob` is the tumour probability per voxel (same shape as `seg`); `gt` the
    ground-truth labels, or None (status then empty). Lesions are numbered 1..n in the
    order their first voxel is met in C order; centroids are in voxel coordinates.
    """
    seg, prob, spacing, gt = _check(seg, tumor_prob, spacing, gt, subject)
    found = _Lesions.of(seg)
    if found is None:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in COLUMNS})
    n, box, coords = found.n, found.box, found.coords
    voxels = found.count()
    prob_sum = found.count(prob[box][coords].astype(np.float64))
    centroids = [found.count(c.astype(np.float64)) / voxels + b.start for c, b in zip(coords, box)]
    status = [""] * n if gt is None else found.status(gt)
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


def fill_status(table: pd.DataFrame, seg: np.ndarray, gt: np.ndarray, subject: str) -> pd.DataFrame:
    """`subject`'s rows of a lesion table written without ground truth (the ensemble's
    lesions.tsv: the submission never sees labels), with the status that lesion_table
    gives with `gt`: TP when the lesion overlaps the ground-truth tumour, FP otherwise.

    `seg` is the segmentation the table was made from; lesions are matched by number
    (lesion_table's numbering), and InputError is raised, naming the subject, when its
    lesions are not the table's (another count or other sizes).
    """
    seg, gt = _check_truth(seg, gt, subject)
    _require(table, ("subject", "lesion", "voxels", "status"))
    rows = table[table["subject"] == subject].sort_values("lesion")
    found = _Lesions.of(seg)
    voxels = found.count() if found else np.zeros(0, np.int64)
    if rows["lesion"].tolist() != list(range(1, len(voxels) + 1)) or rows["voxels"].tolist() != voxels.tolist():
        raise InputError(
            f"{subject}: the segmentation's {len(voxels)} lesion(s) are not the lesion table's "
            f"{len(rows)} (another segmentation, or a table of another run?)"
        )
    return rows.assign(status=found.status(gt) if found else [])


def truth_lesion_table(seg: np.ndarray, gt: np.ndarray, spacing, subject: str) -> pd.DataFrame:
    """One row per ground-truth tumour lesion of `gt` (columns: TRUTH_COLUMNS): its voxels,
    volume, equivalent-sphere diameter (6 V / pi)^(1/3), and whether `seg` detects it (a
    voxel of it predicted tumour). Numbered as lesion_table numbers predicted lesions."""
    seg, gt = _check_truth(seg, gt, subject)
    spacing = check_spacing(spacing, f"{subject}: spacing")
    found = _Lesions.of(gt)
    if found is None:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in TRUTH_COLUMNS})
    voxels = found.count()
    volume = voxels * float(np.prod(spacing))
    return pd.DataFrame(
        {
            "subject": [subject] * found.n,
            "lesion": np.arange(1, found.n + 1),
            "voxels": voxels.astype(np.int64),
            "volume_mm3": volume,
            "diameter_mm": np.cbrt(6.0 * volume / math.pi),
            "detected": found.overlaps(seg),
        },
        columns=TRUTH_COLUMNS,
    )


def detection_recall(truth: pd.DataFrame, min_mm: float = 0.0, max_mm: float = math.inf) -> tuple[int, int, float]:
    """(true lesions, detected, recall) among those of diameter in [min_mm, max_mm);
    recall NaN without such lesions."""
    _require(truth, ("diameter_mm", "detected"))
    sized = truth[(truth["diameter_mm"] >= min_mm) & (truth["diameter_mm"] < max_mm)]
    found = int(sized["detected"].astype(bool).sum())
    return len(sized), found, found / len(sized) if len(sized) else float("nan")


def size_label(min_mm: float, max_mm: float) -> str:
    """'< 10 mm', '10-20 mm', '>= 20 mm' for SIZE_BINS' bounds."""
    if min_mm == 0:
        return f"< {max_mm:g} mm"
    return f">= {min_mm:g} mm" if math.isinf(max_mm) else f"{min_mm:g}-{max_mm:g} mm"


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


class _Lesions:
    """The tumour lesions of a segmentation, numbered as lesion_table numbers them
    (components in the tumour's bounding box, met in C order: the same order as in the
    whole volume), with per-lesion sums over their voxels only (sparse in a large box)."""

    def __init__(self, box, labelled: np.ndarray, n: int):
        self.box, self.n = box, n
        self.coords = np.nonzero(labelled)
        self.ids = labelled[self.coords]

    @classmethod
    def of(cls, seg: np.ndarray) -> _Lesions | None:
        box = bounding_box(seg == 2)
        return None if box is None else cls(box, *label_components(seg[box] == 2))

    def count(self, weights=None) -> np.ndarray:
        """Per lesion 1..n: its voxels, or the sum of `weights` (one per lesion voxel)."""
        return np.bincount(self.ids, weights=weights, minlength=self.n + 1)[1:]

    def overlaps(self, other: np.ndarray) -> np.ndarray:
        """Per lesion: whether a voxel of it is tumour (label 2) in `other`."""
        return self.count((other[self.box][self.coords] == 2).astype(np.float64)) > 0

    def status(self, gt: np.ndarray) -> list[str]:
        """TP where a lesion overlaps the ground-truth tumour by a voxel, else FP."""
        return np.where(self.overlaps(gt), "TP", "FP").tolist()


def read_lesion_table(path) -> pd.DataFrame:
    """A lesion table as written (an empty status stays "", not NaN)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["NaN"])


def _dtype(column: str) -> str:
    kinds = {"subject": "object", "status": "object", "lesion": "int64", "voxels": "int64", "detected": "bool"}
    return kinds.get(column, "float64")


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
        seg, gt = _check_truth(seg, gt, subject)
    return seg, prob, check_spacing(spacing, f"{subject}: spacing"), gt


def _check_truth(seg, gt, subject: str) -> tuple[np.ndarray, np.ndarray]:
    """A 3D segmentation and ground truth of one shape, as arrays; else InputError naming `subject`."""
    seg, gt = np.asarray(seg), np.asarray(gt)
    if seg.ndim != 3 or gt.shape != seg.shape:
        raise InputError(f"{subject}: ground truth shape {gt.shape} differs from segmentation {seg.shape}")
    return seg, gt
