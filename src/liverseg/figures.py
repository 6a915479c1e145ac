"""The paper's figures, drawn with matplotlib and written atomically as PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: workflow jobs and CI have no display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from .cohort import PHASES
from .io import atomic_path

PHASE_NAMES = {"A": "arterial", "D": "delayed", "NC": "no contrast", "P": "portal", "U": "unknown"}
PHASE_COLOURS = dict(zip(PHASES, plt.get_cmap("tab10").colors))


def save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png")
    plt.close(fig)


def spacing_figure(cohort: pd.DataFrame, path, *, cohort_name: str, seed: int = 0) -> None:
    """Figure 1: in-plane spacing against slice thickness, coloured by phase, jittered."""
    rng = np.random.default_rng(seed)
    spacing = np.array([[float(v) for v in s.split(",")] for s in cohort["spacing"]])
    in_plane = spacing[:, :2].mean(axis=1)
    thickness = spacing[:, 2]
    # jitter scaled to each axis's range, so identical spacings separate visibly
    jitter = lambda values: values + rng.normal(0, 0.01 * max(np.ptp(values), 0.1), len(values))  # noqa: E731
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for phase in PHASES:
        member = cohort["phase"].to_numpy() == phase
        if member.any():
            ax.scatter(jitter(in_plane[member]), jitter(thickness[member]), s=28, alpha=0.8,
                       color=PHASE_COLOURS[phase], label=f"{PHASE_NAMES[phase]} ({member.sum()})", edgecolor="white", linewidth=0.5)
    ax.set_xlabel("in-plane spacing (mm)")
    ax.set_ylabel("slice thickness (mm)")
    ax.set_title(f"Spatial resolution, {cohort_name} cohort (n={len(cohort)})")
    ax.legend(title="contrast phase", fontsize=8, title_fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    save(fig, path)


def boxes_figure(boxes: pd.DataFrame, patch_sizes: dict[str, list[int]], path, *, cohort_name: str) -> None:
    """Figure 3: lesion boxes (left) and liver boxes (right) against the configured patches.

    Each box is a point (longest in-plane side, number of slices) in voxels; a patch is
    the rectangle from the origin, so a point inside a (square in-plane) patch's
    rectangle is a box the patch encloses.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = plt.get_cmap("Set1").colors
    for ax, kind, title in ((axes[0], "lesion", "tumour lesions"), (axes[1], "liver", "livers")):
        part = boxes[boxes["kind"] == kind]
        side = part[["size_x", "size_y"]].max(axis=1) if len(part) else pd.Series(dtype=float)
        ax.scatter(side, part["size_z"], s=14, alpha=0.6, color="0.25", label=f"{title} (n={len(part)})")
        for i, (label, size) in enumerate(patch_sizes.items()):
            ax.add_patch(Rectangle((0, 0), max(size[:2]), size[2], fill=False, lw=1.8, color=colours[i % len(colours)],
                                   label=f"{label}: {'×'.join(map(str, size))}"))
        extent_x = max([side.max() if len(side) else 0] + [max(s[:2]) for s in patch_sizes.values()])
        extent_z = max([part["size_z"].max() if len(part) else 0] + [s[2] for s in patch_sizes.values()])
        ax.set_xlim(0, extent_x * 1.08)
        ax.set_ylim(0, extent_z * 1.1)
        ax.set_xlabel("longest in-plane side of the box (voxels)")
        ax.set_ylabel("slices spanned by the box")
        ax.set_title(f"Bounding boxes of the {title}")
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Bounding boxes and patch sizes, {cohort_name} cohort")
    save(fig, path)


def draw_spacing_figure(cohort_tsv, out_png, *, cohort_name: str, seed: int = 0) -> None:
    spacing_figure(pd.read_csv(cohort_tsv, sep="\t", dtype=str), out_png, cohort_name=cohort_name, seed=seed)


def draw_boxes_figure(boxes_tsv, patch_sizes_json, out_png, *, cohort_name: str) -> None:
    import json
    from pathlib import Path

    report = json.loads(Path(patch_sizes_json).read_text())
    # one rectangle per distinct configured size, named by the models that use it
    sizes: dict[tuple, list[str]] = {}
    for name, entry in report["configured"].items():
        sizes.setdefault(tuple(entry["patch_size"]), []).append(name)
    patches = {", ".join(names): list(size) for size, names in sizes.items()}
    boxes_figure(pd.read_csv(boxes_tsv, sep="\t"), patches, out_png, cohort_name=cohort_name)
