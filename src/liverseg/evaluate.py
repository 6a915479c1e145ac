"""Evaluate predicted segmentations against ground truth: one metrics row per subject.

Pairing follows the challenge: ground truth `lbN.nii.gz` pairs with the prediction
`imN.nii.gz`; a prediction with the ground truth's own file name pairs too; hidden files
(macOS's `._lb1.nii.gz`) are no images. Everything that can be checked from the headers
(partners, 3D shapes, voxel spacings, and the grid's place in world space: every voxel
centre within GRID_TOLERANCE_MM, after canonical reorientation) is checked for every pair
before any voxel is read; the workers then check the labels while computing. Any problem
stops the evaluation with one InputError listing every offending file, and no output is
written.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm import tqdm

from .cohort import natural_key
from .errors import InputError, raise_problems
from .io import check_grid, load_nifti, spacing_of, write_tsv
from .metrics import METRIC_KEYS, check_tolerance, subject_metrics
from .paths import check_output_file, real, refuse_overwriting, visible_files

SUFFIXES = (".nii.gz", ".nii")
SPACING_ATOL_MM = 1e-3  # header spacings are float32; a resampled volume differs by far more
# Prediction and ground truth must put every voxel within this distance of the same world
# position. float32 headers rewritten by other tools move the grid by hundredths of a mm;
# a tenth of a mm is under a sixth of ATLAS's finest voxel (0.68 mm).
GRID_TOLERANCE_MM = 0.1

Pair = tuple[str, Path, Path]  # (subject, ground truth, prediction)


def evaluate_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    out_tsv: str | os.PathLike,
    tolerance_mm: float,
    jobs: int | None = None,
) -> pd.DataFrame:
    """Evaluate every prediction in `pred_dir` against `gt_dir`; write and return the table.

    Refused before any metric is computed: the same folder as both, an output that is a
    folder, cannot be written, or would land on an input or be read as one next time.
    """
    check_output_file(out_tsv)
    if real(pred_dir) == real(gt_dir):
        raise InputError(
            f"{pred_dir}: the same folder as the ground truth {gt_dir}; every label would be scored against itself"
        )
    pairs = pair_folders(pred_dir, gt_dir)
    refuse_overwriting([out_tsv], [path for _, gt, pred in pairs for path in (gt, pred)])
    if Path(out_tsv).name.endswith(SUFFIXES) and real(out_tsv).parent in (
        real(pred_dir),
        real(gt_dir),
    ):
        raise InputError(
            f"{out_tsv}: a NIfTI name in an input folder; the table would be read as an image "
            "next time: choose another output"
        )
    frame = evaluate_pairs(pairs, tolerance_mm=tolerance_mm, jobs=jobs)
    write_tsv(out_tsv, frame)
    return frame


def pair_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> list[Pair]:
    """(subject, ground truth, prediction) for every ground truth in `gt_dir`, in natural order.

    Files are matched on their names without .nii.gz/.nii. Raises InputError, naming the
    files, when a ground truth has no prediction, a prediction has no ground truth, or a
    ground truth matches two predictions.
    """
    gts, preds = (
        _nifti_files(Path(gt_dir), "ground truth"),
        _nifti_files(Path(pred_dir), "prediction"),
    )
    pairs, problems, used = [], [], set()
    for stem, gt_path in gts.items():
        wanted = list(dict.fromkeys([_challenge_partner(stem), stem]))
        found = [w for w in wanted if w in preds]
        if not found:
            problems.append(f"{gt_path}: no prediction named {' or '.join(wanted)} in {pred_dir}")
        elif len(found) > 1:
            problems.append(f"{gt_path}: two predictions match: {', '.join(str(preds[w]) for w in found)}")
        else:
            used.add(found[0])
            pairs.append((found[0], gt_path, preds[found[0]]))
    problems += [
        f"{path}: no ground truth for this prediction in {gt_dir}" for s, path in preds.items() if s not in used
    ]
    raise_problems(problems, "cannot pair predictions with ground truth")
    return sorted(pairs, key=lambda p: natural_key(p[0]))


def evaluate_pairs(pairs: list[Pair], tolerance_mm: float, jobs: int | None = None) -> pd.DataFrame:
    """Metrics of each (subject, ground truth path, prediction path), in parallel.

    Returns one row per subject, in the order given: `subject`, then METRIC_KEYS.
    """
    pairs = [(str(s), Path(g), Path(p)) for s, g, p in pairs]
    check_tolerance(tolerance_mm)
    if not pairs:
        raise InputError("no subjects to evaluate")
    duplicates = sorted(s for s, count in Counter(s for s, _, _ in pairs).items() if count > 1)
    raise_problems([f"subject {s} appears more than once" for s in duplicates], "cannot evaluate")
    raise_problems([problem for pair in pairs if (problem := _header_problem(*pair[1:]))], "cannot evaluate")

    jobs = max(1, min(jobs or os.cpu_count() or 1, len(pairs)))
    results: dict[str, dict | str] = {}
    progress = tqdm(total=len(pairs), desc="evaluate", unit="subject", disable=False)
    if jobs == 1:
        for pair in pairs:
            results[pair[0]] = _evaluate_one(pair, tolerance_mm)
            progress.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_evaluate_one, pair, tolerance_mm): pair[0] for pair in pairs}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                progress.update()
    progress.close()
    raise_problems([r for r in results.values() if isinstance(r, str)], "cannot evaluate")
    rows = [{"subject": s, **results[s]} for s, _, _ in pairs]
    return pd.DataFrame(rows, columns=["subject", *METRIC_KEYS])


def _evaluate_one(pair: Pair, tolerance_mm: float) -> dict | str:
    """Metrics of one pair, or the message of the problem found (raised by the caller)."""
    subject, gt_path, pred_path = pair
    try:
        gt_img = load_nifti(gt_path)
        gt = _labels(gt_img, gt_path)
        pred = _labels(load_nifti(pred_path), pred_path)
        return subject_metrics(gt, pred, spacing_of(gt_img), tolerance_mm)
    except InputError as exc:
        return str(exc)


def _labels(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    """The voxel labels as uint8; InputError naming the file if any is not 0, 1 or 2."""
    data = img.get_fdata(dtype=np.float32)  # cached by load_nifti's decoding check
    labels = data.astype(np.uint8)
    if data.size and (data.min() < 0 or data.max() > 2 or not np.array_equal(labels, data)):
        bad = np.unique(data[~np.isin(data, (0, 1, 2))])
        shown = ", ".join(f"{v:g}" for v in bad[:10]) + (", ..." if bad.size > 10 else "")
        raise InputError(f"{path}: labels outside {{0, 1, 2}}: {shown}")
    return labels


def _header_problem(gt_path: Path, pred_path: Path) -> str | None:
    """The first of: the same file twice, an unreadable header, or a shape, spacing or
    grid (world position) mismatch in canonical orientation."""
    if real(gt_path) == real(pred_path):
        return f"{pred_path}: the ground truth file itself; it would be scored against itself"
    try:
        gt_shape, gt_spacing, gt_affine = _canonical_geometry(gt_path)
        pred_shape, pred_spacing, pred_affine = _canonical_geometry(pred_path)
    except InputError as exc:
        return str(exc)
    if gt_shape != pred_shape:
        return f"{pred_path}: shape {pred_shape} differs from the ground truth {gt_path}: {gt_shape}"
    if not np.allclose(gt_spacing, pred_spacing, rtol=0, atol=SPACING_ATOL_MM):
        return (
            f"{pred_path}: spacing {tuple(round(s, 4) for s in pred_spacing)} mm differs from the ground truth "
            f"{gt_path}: {tuple(round(s, 4) for s in gt_spacing)} mm"
        )
    offset = _grid_offset_mm(gt_affine, pred_affine, gt_shape)
    if offset > GRID_TOLERANCE_MM:
        return (
            f"{pred_path}: not on the grid of the ground truth {gt_path}: voxels up to {offset:.3g} mm apart "
            f"in world space (tolerance {GRID_TOLERANCE_MM} mm; shifted, rotated or flipped?)"
        )
    return None


def _grid_offset_mm(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...]) -> float:
    """The largest distance (mm) between a voxel centre's positions under affines a and b.

    The difference of two affine maps is affine, so its largest norm over the grid is at
    one of the grid's eight corners.
    """
    corners = np.array([[i * (n - 1) for i, n in zip(bits, shape)] + [1] for bits in np.ndindex(2, 2, 2)], float)
    return float(np.linalg.norm(corners @ (a - b)[:3].T, axis=1).max())


def _canonical_geometry(path: Path) -> tuple[tuple[int, ...], tuple[float, ...], np.ndarray]:
    """Shape, spacing and affine of the image as load_nifti will return it, from the header alone."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        shape, zooms, affine = img.shape, img.header.get_zooms(), img.affine
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc})") from exc
    if len(shape) != 3:
        raise InputError(f"{path}: expected a 3D volume, got shape {shape}")
    check_grid(img, path)
    ornt = nib.orientations.io_orientation(affine)
    order = np.argsort(ornt[:, 0].astype(int))  # canonical axis k comes from input axis order[k]
    canonical = affine @ nib.orientations.inv_ornt_aff(ornt, shape)  # as nibabel's as_reoriented
    return tuple(int(shape[i]) for i in order), tuple(float(zooms[i]) for i in order), canonical


def _nifti_files(folder: Path, what: str) -> dict[str, Path]:
    """NIfTI files of `folder` by name without suffix; InputError if none, or two share a name."""
    if not folder.is_dir():
        raise InputError(f"{folder}: {what} folder not found")
    files: dict[str, Path] = {}
    for path in visible_files(folder):  # macOS's ._lb1.nii.gz is no label
        suffix = next((s for s in SUFFIXES if path.name.endswith(s)), None)
        if suffix is None:
            continue
        stem = path.name[: -len(suffix)]
        if stem in files:
            raise InputError(f"{folder}: both {files[stem].name} and {path.name} hold {what} {stem}")
        files[stem] = path
    if not files:
        raise InputError(f"{folder}: no {what} NIfTI files (*.nii.gz, *.nii)")
    return files


def _challenge_partner(gt_stem: str) -> str:
    """lbN -> imN (the challenge's naming); other names map to themselves."""
    match = re.fullmatch(r"lb(\d+)", gt_stem)
    return f"im{match.group(1)}" if match else gt_stem
