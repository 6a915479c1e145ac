"""File input and output shared by every step.

Two conventions live here: volumes are loaded in a canonical (RAS+) orientation, which
puts the slice axis of a transverse acquisition last; and every file is written under a
temporary name in its destination folder and renamed, so a killed job never leaves a
half-written output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from .errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    The temporary name keeps the final suffix (".nii.gz", ".png", ...) so that
    libraries that choose a format from the suffix behave as for the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_tsv(path: str | os.PathLike, frame) -> None:
    """A pandas DataFrame as TSV, NaN written as `NaN`."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="NaN")


def load_nifti(path: str | os.PathLike) -> nib.Nifti1Image:
    """Load a NIfTI image reoriented to the closest canonical (RAS+) orientation.

    Raises InputError naming the file when it is missing or cannot be decoded.
    The voxel data are read here, so a truncated .nii.gz fails now, not later.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    img = _read(path, nib.load, str(path))
    check_grid(img, path)  # reorienting an image without a grid fails with nibabel's words
    img = _read(path, nib.as_closest_canonical, img)
    _read(path, img.get_fdata, dtype=np.float32)  # force decoding: catches truncated gzip streams
    return img


def _read(path: Path, step, *args, **kwargs):
    """`step(*args, **kwargs)`; any error (nibabel raises many types for corrupt files)
    as InputError naming `path`."""
    try:
        return step(*args, **kwargs)
    except Exception as exc:
        raise InputError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc})") from exc


def load_image(path: str | os.PathLike) -> tuple[nib.Nifti1Image, np.ndarray]:
    """An image to segment, as load_nifti gives it, and its intensities (float32).

    Raises InputError naming the file and the check that failed: readable, 3D, a voxel
    grid (finite, invertible affine), finite intensities.
    """
    img = load_nifti(path)
    if img.ndim != 3 or min(img.shape) < 1:
        raise InputError(f"{path}: not a 3D volume (shape {img.shape})")
    data = img.get_fdata(dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(f"{path}: {bad} voxel(s) with a NaN or infinite intensity")
    return img, data


def check_grid(img: nib.Nifti1Image, path: str | os.PathLike) -> None:
    """InputError naming `path` unless its affine places voxels in space: finite, invertible."""
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(f"{path}: no valid voxel grid (affine not finite or not invertible)")


def c_ordered(volume: np.ndarray) -> np.ndarray:
    """`volume` (H, W, D) as a C-ordered array, whatever its layout (itself if it is one).

    NIfTI arrays come in Fortran order, and a whole-array transposing copy walks one side
    of it with a stride of H x W elements, missing the cache at every step. Copied one
    (H, D) plane at a time, each plane's transpose stays in cache (docs/performance.md).
    """
    volume = np.asarray(volume)
    if volume.ndim != 3 or volume.flags.c_contiguous:
        return np.ascontiguousarray(volume)
    out = np.empty(volume.shape, dtype=volume.dtype)
    for j in range(volume.shape[1]):
        out[:, j, :] = volume[:, j, :]
    return out


def spacing_of(img: nib.Nifti1Image) -> tuple[float, float, float]:
    return tuple(float(s) for s in img.header.get_zooms()[:3])


def save_nifti(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray, dtype=None) -> None:
    """Write `data` with `affine` atomically; the header dtype follows `dtype`."""
    data = np.asarray(data if dtype is None else data.astype(dtype))
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(data.dtype)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def save_in_reference_space(
    path: str | os.PathLike, data: np.ndarray, reference: str | os.PathLike, dtype=np.uint8
) -> None:
    """Write a canonical-orientation array in the orientation and header of `reference`.

    Segmentations are computed in the canonical orientation load_nifti gives; a user (and
    the challenge's evaluator) expects them on the grid of the image they came from.
    """
    original = nib.load(str(reference))
    back = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(("R", "A", "S")),
        nib.orientations.io_orientation(original.affine),
    )
    array = nib.orientations.apply_orientation(np.asarray(data), back).astype(dtype)
    header = original.header.copy()
    header.set_data_dtype(dtype)
    header.set_slope_inter(1, 0)
    img = nib.Nifti1Image(array, original.affine, header=header)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def save_probabilities(path: str | os.PathLike, probabilities: np.ndarray) -> None:
    """Softmax probabilities (C, H, W, D), canonical orientation, float16, compressed."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, probabilities=probabilities.astype(np.float16))


def load_probabilities(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: probability file not found")
    try:
        with np.load(path) as archive:
            return archive["probabilities"].astype(np.float32)
    except Exception as exc:
        raise InputError(f"{path}: cannot read probabilities ({type(exc).__name__}: {exc})") from exc
