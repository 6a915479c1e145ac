"""Bounding-box analysis behind the patch sizes (paper §2.3, Figure 3).

For each subject: the box of the whole liver (labels 1 ∪ 2) and of every tumour lesion
(a 26-connected component of label 2), in voxels and in mm. From them, the smallest
AHNet-valid patch sizes that enclose the lesions and a share of the livers, and the share
of boxes that the configured patch sizes enclose.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage

from .io import load_nifti, spacing_of
from .patch_rules import AHNET_MIN_LARGEST_SIDE, AHNET_SLICE_MULTIPLE, ahnet_inplane_multiple

AXES = ("x", "y", "z")
STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity, as post-processing and lesions use


def subject_boxes(label: np.ndarray, spacing, subject: str) -> list[dict]:
    """Box rows of one label map: one 'liver' row, one 'lesion' row per tumour component."""
    rows = []

    def row(kind: str, index: int, mask_slices: tuple[slice, ...], voxels: int) -> dict:
        size = [s.stop - s.start for s in mask_slices]
        entry = {"subject": subject, "kind": kind, "index": index}
        entry.update({f"size_{a}": n for a, n in zip(AXES, size)})
        entry.update({f"size_{a}_mm": round(n * float(sp), 3) for a, n, sp in zip(AXES, size, spacing)})
        entry["voxels"] = voxels
        entry["volume_mm3"] = round(voxels * float(np.prod(spacing)), 3)
        return entry

    liver = label > 0
    if liver.any():
        rows.append(row("liver", 1, ndimage.find_objects(liver.astype(np.uint8))[0], int(liver.sum())))
    components, count = ndimage.label(label == 2, structure=STRUCTURE_26)
    if count:
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            rows.append(row("lesion", index, box, int(sizes[index])))
    return rows


def cohort_boxes(records: list[dict]) -> pd.DataFrame:
    rows = []
    for record in records:
        img = load_nifti(record["label"])
        rows.extend(subject_boxes(np.asarray(img.dataobj), spacing_of(img), record["subject"]))
    return pd.DataFrame(rows)


def _round_up(value: float, multiple: int, minimum: int) -> int:
    return max(minimum, multiple * math.ceil(value / multiple))


def smallest_ahnet_patch(extent, psp_block_num: int) -> list[int]:
    """Smallest patch (H, W, D) enclosing `extent` voxels that meets AHNet's size rules.

    The rules (patch_rules.check_ahnet_patch_size): H and W multiples of
    2**max(5, psp_block_num+3), D a multiple of 32, one side at least 64.
    In-plane sides are made equal, since the liver's in-plane orientation varies.
    """
    multiple = ahnet_inplane_multiple(psp_block_num)
    in_plane = _round_up(max(extent[0], extent[1]), multiple, multiple)
    depth = _round_up(extent[2], AHNET_SLICE_MULTIPLE, AHNET_SLICE_MULTIPLE)
    if max(in_plane, depth) < AHNET_MIN_LARGEST_SIDE:
        in_plane = _round_up(AHNET_MIN_LARGEST_SIDE, multiple, AHNET_MIN_LARGEST_SIDE)
    return [in_plane, in_plane, depth]


def coverage(boxes: pd.DataFrame, patch_size) -> float:
    """Share of boxes that fit in the patch along every axis."""
    if boxes.empty:
        return float("nan")
    fits = np.ones(len(boxes), dtype=bool)
    for axis, side in zip(AXES, patch_size):
        fits &= boxes[f"size_{axis}"].to_numpy() <= int(side)
    return float(fits.mean())


def _enclosing(sizes: pd.Series, share: float) -> int:
    """The smallest side that at least `share` of the boxes fit in, along one axis.

    Applied axis by axis, so the joint share can be lower; patch_sizes.json reports the
    joint coverage that results.
    """
    if sizes.empty:
        return 0
    ordered = np.sort(sizes.to_numpy())
    return int(ordered[max(0, math.ceil(share * len(ordered)) - 1)])


def recommend_patch_sizes(
    boxes: pd.DataFrame, *, liver_coverage: float, lesion_coverage: float, psp_block_num: int
) -> dict:
    """The recommended AHNet patch per task (multiclass and liver share one)."""
    livers = boxes[boxes["kind"] == "liver"]
    lesions = boxes[boxes["kind"] == "lesion"]
    liver_need = [_enclosing(livers[f"size_{a}"], liver_coverage) for a in AXES]
    lesion_max = [_enclosing(lesions[f"size_{a}"], 1.0) for a in AXES]
    lesion_need = [_enclosing(lesions[f"size_{a}"], lesion_coverage) for a in AXES]
    whole = smallest_ahnet_patch([max(a, b) for a, b in zip(liver_need, lesion_max)], psp_block_num)
    tumor = smallest_ahnet_patch(lesion_need, psp_block_num)
    return {"multiclass": whole, "liver": whole, "tumor": tumor}


def patch_size_report(
    boxes: pd.DataFrame,
    models: dict,
    *,
    liver_coverage: float,
    lesion_coverage: float,
    psp_block_num: int,
) -> dict:
    """patch_sizes.json: recommendations and the coverage of each configured size."""
    recommended = recommend_patch_sizes(
        boxes,
        liver_coverage=liver_coverage,
        lesion_coverage=lesion_coverage,
        psp_block_num=psp_block_num,
    )
    livers = boxes[boxes["kind"] == "liver"]
    lesions = boxes[boxes["kind"] == "lesion"]
    report = {
        "liver_coverage_target": liver_coverage,
        "lesion_coverage_target": lesion_coverage,
        "psp_block_num": psp_block_num,
        "recommended": recommended,
        "configured": {},
    }
    for name, model in models.items():
        size = model["patch_size"]
        if size == "auto":
            size = recommended[model["task"]]
        report["configured"][name] = {
            "patch_size": [int(s) for s in size],
            "auto": model["patch_size"] == "auto",
            "liver_coverage": coverage(livers, size),
            "lesion_coverage": coverage(lesions, size),
        }
    return report


def resolve_patch_size(model: dict, report: dict | None) -> list[int]:
    """The patch size a model trains with: explicit in the config, or from the analysis."""
    if model["patch_size"] != "auto":
        return [int(s) for s in model["patch_size"]]
    return [int(s) for s in report["recommended"][model["task"]]]


def write_boxes(cohort_tsv, out_tsv) -> pd.DataFrame:
    from .cohort import read_cohort
    from .io import write_tsv

    boxes = cohort_boxes(read_cohort(cohort_tsv))
    write_tsv(out_tsv, boxes)
    return boxes


def write_patch_sizes(boxes_tsv, out_json, models: dict, **targets) -> dict:
    from .io import write_json

    report = patch_size_report(pd.read_csv(boxes_tsv, sep="\t"), models, **targets)
    write_json(out_json, report)
    return report
