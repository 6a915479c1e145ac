"""The cohort: reading a folder in the official ATLAS layout and checking every pair.

Layout (facts.md): root/imagesTr/imN.nii.gz, root/labelsTr/lbN.nii.gz and
root/patient_info_train.json. The synthetic generator writes the same layout, so this
reader serves both. Every pair is validated before anything else runs; the first
problem found stops with an InputError that names the file and the problem.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .io import load_nifti, spacing_of, write_tsv

# ATLAS's own spellings (including "unkown") mapped to the paper's abbreviations.
PHASE_CODES = {
    "arterial": "A",
    "portal": "P",
    "delayed": "D",
    "no contrast agent": "NC",
    "unkown": "U",
    "unknown": "U",
}
PHASES = ("A", "D", "NC", "P", "U")  # Table 1's column order
LABELS = (0, 1, 2)
_IMAGE_NAME = re.compile(r"^im(\d+)\.nii(\.gz)?$")


def natural_key(name: str) -> list:
    """Sort key that orders names as people read them: im2 before im10 (runs of digits
    compare as numbers, the rest as text)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_phases(info_path: Path) -> dict[str, str]:
    """Map subject id ("imN") to its phase code; keys may be "N" or "imN"."""
    if not info_path.is_file():
        raise InputError(f"{info_path}: file not found (patient_info_train.json holds the contrast phases)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{info_path}: not valid JSON ({exc})") from exc
    phases = {}
    for key, entry in info.items():
        subject = key if str(key).startswith("im") else f"im{key}"
        raw = entry.get("contrast_phase") if isinstance(entry, dict) else None
        if raw is None:
            raise InputError(f"{info_path}: entry {key!r} has no 'contrast_phase'")
        code = PHASE_CODES.get(str(raw).strip().lower())
        if code is None:
            raise InputError(
                f"{info_path}: entry {key!r} has unknown contrast_phase {raw!r} (expected one of {sorted(PHASE_CODES)})"
            )
        phases[subject] = code
    return phases


def _subject_ids(images_dir: Path) -> list[str]:
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: folder not found (expected the ATLAS layout: imagesTr/imN.nii.gz)")
    ids = []
    for path in images_dir.iterdir():
        match = _IMAGE_NAME.match(path.name)
        if match:
            ids.append(int(match.group(1)))
    if not ids:
        raise InputError(f"{images_dir}: no images named imN.nii.gz")
    return [f"im{n}" for n in sorted(ids)]


def check_pair(image_path: Path, label_path: Path) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Validate one image/label pair; return (spacing, shape) in canonical orientation."""
    image = load_nifti(image_path)
    label = load_nifti(label_path)
    if image.ndim != 3:
        raise InputError(f"{image_path}: image has {image.ndim} dimensions {image.shape}, expected a 3D volume")
    if label.ndim != 3:
        raise InputError(f"{label_path}: label has {label.ndim} dimensions {label.shape}, expected a 3D volume")
    if image.shape != label.shape:
        raise InputError(
            f"{label_path}: label shape {label.shape} differs from image {image_path.name} shape {image.shape}"
        )
    if not np.allclose(image.affine, label.affine, atol=1e-3):
        raise InputError(f"{label_path}: label affine differs from the affine of image {image_path.name}")
    voxels = np.asarray(image.dataobj, dtype=np.float32)
    if not np.isfinite(voxels).all():
        raise InputError(f"{image_path}: image holds {int((~np.isfinite(voxels)).sum())} NaN or infinite voxels")
    values = np.unique(np.asarray(label.dataobj))
    bad = [v for v in values.tolist() if v not in LABELS]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:5])
        raise InputError(f"{label_path}: label values {shown} outside {{0, 1, 2}}")
    if values.max(initial=0) == 0:
        raise InputError(f"{label_path}: label is empty (no liver or tumour voxel)")
    return spacing_of(image), tuple(int(s) for s in image.shape)


def scan_dataset(root: str | Path) -> pd.DataFrame:
    """Validate every pair under `root` and return the cohort table."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found (set dataset.root in the config)")
    phases = read_phases(root / "patient_info_train.json")
    rows = []
    for subject in _subject_ids(root / "imagesTr"):
        number = subject[2:]
        image_path = root / "imagesTr" / f"{subject}.nii.gz"
        label_path = root / "labelsTr" / f"lb{number}.nii.gz"
        if not label_path.is_file():
            raise InputError(f"{label_path}: label file not found for image {image_path.name}")
        if subject not in phases:
            raise InputError(f"{root / 'patient_info_train.json'}: no entry for {subject} (contrast phase unknown)")
        spacing, shape = check_pair(image_path, label_path)
        rows.append(
            {
                "subject": subject,
                "image": str(image_path),
                "label": str(label_path),
                "phase": phases[subject],
                "spacing": ",".join(f"{s:.6g}" for s in spacing),
                "shape": ",".join(str(s) for s in shape),
            }
        )
    return pd.DataFrame(rows)


def write_cohort(root: str | Path, out_tsv: str | Path) -> pd.DataFrame:
    table = scan_dataset(root)
    write_tsv(out_tsv, table)
    return table


def read_cohort(path: str | Path) -> list[dict]:
    """Records of cohort.tsv with spacing and shape parsed into tuples."""
    table = pd.read_csv(path, sep="\t", dtype=str)
    records = []
    for row in table.to_dict("records"):
        row["spacing"] = tuple(float(s) for s in row["spacing"].split(","))
        row["shape"] = tuple(int(s) for s in row["shape"].split(","))
        records.append(row)
    return records


def median_spacing(records: list[dict]) -> tuple[float, float, float]:
    return tuple(float(s) for s in np.median([r["spacing"] for r in records], axis=0))
