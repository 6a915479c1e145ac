"""The paper's figures, drawn with matplotlib and written atomically as PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: workflow jobs and CI have no display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch, Rectangle

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
            ax.scatter(
                jitter(in_plane[member]),
                jitter(thickness[member]),
                s=28,
                alpha=0.8,
                color=PHASE_COLOURS[phase],
                label=f"{PHASE_NAMES[phase]} ({member.sum()})",
                edgecolor="white",
                linewidth=0.5,
            )
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
    rectangle is a box the patch encloses. Each rectangle carries its size at its top
    right corner; the legend, under both panels, names the models of each size (it once
    sat inside the panels, over the rectangles' tops).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = plt.get_cmap("Set1").colors
    for ax, kind, title in ((axes[0], "lesion", "tumour lesions"), (axes[1], "liver", "livers")):
        part = boxes[boxes["kind"] == kind]
        side = part[["size_x", "size_y"]].max(axis=1) if len(part) else pd.Series(dtype=float)
        ax.scatter(side, part["size_z"], s=14, alpha=0.6, color="0.25")
        for i, (label, size) in enumerate(patch_sizes.items()):
            colour = colours[i % len(colours)]
            ax.add_patch(
                Rectangle(
                    (0, 0),
                    max(size[:2]),
                    size[2],
                    fill=False,
                    lw=1.8,
                    color=colour,
                    label=f"{'×'.join(map(str, size))}: {label}",
                )
            )
            ax.annotate(
                "×".join(map(str, size)),
                (max(size[:2]), size[2]),
                xytext=(-3, 3),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=9,
                fontweight="bold",
                color=colour,
            )
        extent_x = max([side.max() if len(side) else 0] + [max(s[:2]) for s in patch_sizes.values()])
        extent_z = max([part["size_z"].max() if len(part) else 0] + [s[2] for s in patch_sizes.values()])
        ax.set_xlim(0, extent_x * 1.08)
        ax.set_ylim(0, extent_z * 1.18)  # room above the tallest rectangle for its size
        ax.set_xlabel("longest in-plane side of the box (voxels)")
        ax.set_ylabel("slices spanned by the box")
        ax.set_title(f"Bounding boxes of the {title} (n={len(part)})")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        title="patch sizes (H×W×slices) and the models using them",
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=1 if len(labels) > 2 else len(labels),
        fontsize=9,
        title_fontsize=9,
        frameon=False,
    )
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


# Figure 2's columns: (x centre, width) in axis units (about an inch each), box colours.
PIPELINE_COLUMNS = {
    "image": (0.75, 1.4),
    "models": (3.15, 2.25),
    "raw": (5.95, 2.4),
    "post": (8.9, 2.7),
    "segmentation": (11.55, 1.6),
    "uncertainty": (14.35, 2.9),
}
BOX_COLOURS = {"data": "#e8eef7", "model": "#fde5c8", "step": "#e3f1df"}
ROW_HEIGHT = 2.6
HEADER = 1.1  # room above the rows for the rule names


def _box(ax, column: str, y: float, height: float, text: str, kind: str, title: str | None = None) -> tuple:
    """A rounded box centred at (column, y); returns its left and right edge points."""
    x, width = PIPELINE_COLUMNS[column]
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=BOX_COLOURS[kind],
            edgecolor="0.35",
            lw=1,
        )
    )
    if title:
        ax.text(x, y + height / 2 - 0.1, title, ha="center", va="top", fontsize=10, fontweight="bold")
    ax.text(x, y - (0.15 if title else 0), text, ha="center", va="center", fontsize=9, linespacing=1.3)
    return (x - width / 2, y), (x + width / 2, y)


def _arrow(ax, start: tuple, end: tuple) -> None:
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 1.2, "shrinkA": 2, "shrinkB": 2},
    )


def _header(ax, first: str, last: str, y: float, text: str) -> None:
    """The rule that makes columns first..last, over a bracket spanning them."""
    left = PIPELINE_COLUMNS[first][0] - PIPELINE_COLUMNS[first][1] / 2
    right = PIPELINE_COLUMNS[last][0] + PIPELINE_COLUMNS[last][1] / 2
    ax.plot([left, left, right, right], [y - 0.08, y, y, y - 0.08], color="0.45", lw=1)
    ax.text(
        (left + right) / 2,
        y + 0.06,
        text,
        ha="center",
        va="bottom",
        fontsize=9,
        style="italic",
        color="0.2",
    )


def pipelines_figure(pipelines: list, rules: dict[str, str], path) -> None:
    """Figure 2: each pipeline (segment.PipelineSteps) from the image to the post-processed
    segmentation and the lesion uncertainty; brackets name the workflow rules that run
    each part."""
    rows = len(pipelines)
    height = rows * ROW_HEIGHT + HEADER
    fig, ax = plt.subplots(figsize=(14, 0.92 * height))
    _header(
        ax,
        "models",
        "models",
        height - 0.45,
        f"rule {rules['train']} (per fold),\nrule {rules['predict']}",
    )
    _header(ax, "raw", "uncertainty", height - 0.45, f"rule {rules['segment']}")
    for row, steps in enumerate(pipelines):
        top = (rows - row) * ROW_HEIGHT
        ax.text(0.1, top - 0.05, steps.title, ha="left", va="top", fontsize=11, fontweight="bold")
        y = top - ROW_HEIGHT / 2 - 0.15
        _, image = _box(ax, "image", y, 1.0, "MR image\n(slice axis last)", "data")
        n = len(steps.models)
        box_height = 1.15 if n == 1 else 0.95
        for i, text in enumerate(steps.models):
            centre = y + ((n - 1) / 2 - i) * (box_height + 0.15)
            left, right = _box(ax, "models", centre, box_height, text, "model")
            _arrow(ax, image, left)
            raw_left = PIPELINE_COLUMNS["raw"][0] - PIPELINE_COLUMNS["raw"][1] / 2
            _arrow(ax, right, (raw_left, y + ((n - 1) / 2 - i) * 0.3))
        _, raw = _box(ax, "raw", y, 1.5, steps.combine, "step", title="raw segmentation")
        post_in, post_out = _box(ax, "post", y, 1.9, "\n".join(steps.postprocess), "step", title="post-processing")
        _arrow(ax, raw, post_in)
        seg_in, seg_out = _box(ax, "segmentation", y, 1.0, "post-processed\nsegmentation", "data")
        _arrow(ax, post_out, seg_in)
        unc_in, _ = _box(ax, "uncertainty", y, 1.3, steps.uncertainty, "step", title="lesion uncertainty")
        _arrow(ax, seg_out, unc_in)
    ax.set_xlim(0, 15.9)
    ax.set_ylim(0, height)
    ax.axis("off")
    fig.suptitle(
        "The pipelines as configured: from the MR image to the post-processed segmentation and the lesion uncertainty",
        fontsize=11.5,
    )
    save(fig, path)


def draw_pipelines_figure(
    patch_sizes_json,
    out_png,
    *,
    models: dict,
    encoder: str,
    postprocess: dict,
    rules: dict[str, str],
) -> None:
    """Figure 2 from the configured models, their resolved patch sizes and the rule names."""
    import json
    from pathlib import Path

    from .boxes import resolve_patch_size
    from .pipelines import FIGURE2_PIPELINES, describe_pipeline, pipelines_for

    report = json.loads(Path(patch_sizes_json).read_text())
    sizes = {name: resolve_patch_size(model, report) for name, model in models.items()}
    shown = [p for p in pipelines_for(models) if p in FIGURE2_PIPELINES]
    steps = [describe_pipeline(p, models, sizes, encoder=encoder, **postprocess) for p in shown]
    pipelines_figure(steps, rules, out_png)


STATUS_COLOURS = {"TP": "#1b9e77", "FP": "#d95f02"}
MAX_LABELS = 6  # uncertainty values printed per case in Figure 5


def uncertainty_figure(
    lesions: pd.DataFrame, path, *, pipeline: str, cohort_name: str, images: str | None = None
) -> None:
    """Figure 4: lesion uncertainty by TP/FP status (left) and against log volume (right);
    `images` names the images when not the cross-validation's (e.g. the held-out ones)."""
    from .lesions import spearman, uncertainty_auroc

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.linspace(0, 1, 21)
    for status, colour in STATUS_COLOURS.items():
        values = lesions.loc[lesions["status"] == status, "uncertainty"]
        left.hist(
            values,
            bins=bins,
            alpha=0.6,
            color=colour,
            label=f"{status} (n={len(values)})",
            edgecolor="white",
        )
        member = lesions["status"] == status
        right.scatter(
            lesions.loc[member, "volume_mm3"],
            lesions.loc[member, "uncertainty"],
            s=16,
            alpha=0.7,
            color=colour,
            label=status,
        )
    auroc = uncertainty_auroc(lesions) if len(lesions) else float("nan")
    left.set_xlabel("lesion uncertainty $L_{unc}$")
    left.set_ylabel("lesions")
    left.set_title(f"Uncertainty by lesion status (AUROC FP vs TP = {auroc:.2f})")
    rho, _ = spearman(lesions) if len(lesions) else (float("nan"), None)
    if lesions.empty:  # a model that predicts no tumour (an undertrained demo) still gets its figure
        for ax in (left, right):
            ax.text(0.5, 0.5, "no predicted lesion", transform=ax.transAxes, ha="center", va="center")
        right.set_xlim(1, 1e5)  # a log axis needs positive limits even without data
    right.set_xscale("log")
    right.set_xlabel("lesion volume (mm³, log scale)")
    right.set_ylabel("lesion uncertainty $L_{unc}$")
    right.set_title(f"Uncertainty against volume (Spearman ρ = {rho:.2f})")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if not lesions.empty:
            ax.legend()
    where = f"{cohort_name} cohort" + (f", {images}" if images else "")
    fig.suptitle(f"Lesion uncertainty, {pipeline} pipeline, {where} ({len(lesions)} lesions)")
    save(fig, path)


def pick_cases(lesions: pd.DataFrame, count: int = 2) -> list[str]:
    """Subjects that show the score at work: most lesions, both TP and FP first."""
    per_subject = lesions.groupby("subject")["status"].agg(
        lesions="size", mixed=lambda s: int(s.eq("TP").any() and s.eq("FP").any())
    )
    ranked = per_subject.sort_values(["mixed", "lesions"], ascending=False)
    return ranked.index[:count].tolist()


def cases_figure(cases: list[dict], path, *, pipeline: str, cohort_name: str) -> None:
    """Figure 5: per case, the slice through its largest lesion, every lesion on it
    outlined in the colour of its uncertainty, with the value printed beside the largest.

    `cases`: dicts with subject, image (H, W, D), lesions (label map of the table's lesion
    numbers), table (the subject's rows of the lesion table).
    """
    cmap = plt.get_cmap("plasma")
    fig, axes = plt.subplots(1, max(len(cases), 1), figsize=(5.5 * max(len(cases), 1), 5.2), squeeze=False)
    # the colour bar first: it shrinks the axes, and the labels' overlaps are judged after
    mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(mappable, ax=axes[0].tolist(), fraction=0.025, label="lesion uncertainty $L_{unc}$")
    for ax, case in zip(axes[0], cases):
        table = case["table"]
        largest = table.sort_values("voxels").iloc[-1]
        z = int(round(largest["centroid_z"]))
        ax.imshow(case["image"][:, :, z].T, cmap="gray", origin="lower")
        lesion_slice = case["lesions"][:, :, z]
        shown = table[table["lesion"].isin(np.unique(lesion_slice))]
        for _, lesion in shown.iterrows():
            mask = lesion_slice == lesion["lesion"]
            ax.contour(mask.T, levels=[0.5], colors=[cmap(float(lesion["uncertainty"]))], linewidths=1.8)
        label_lesions(ax, shown, lesion_slice, cmap)
        ax.set_title(f"{case['subject']}, slice {z}: {len(shown)} of its {len(table)} lesions")
        ax.axis("off")
    if not cases:
        axes[0, 0].text(0.5, 0.5, "no predicted lesion", ha="center", va="center")
        axes[0, 0].axis("off")
    fig.suptitle(f"Lesion uncertainty on two cases, {pipeline} pipeline, {cohort_name} cohort")
    save(fig, path)


def label_lesions(ax, lesions: pd.DataFrame, lesion_slice: np.ndarray, cmap) -> list:
    """Print uncertainty and status beside the lesions of a slice, largest first, at most
    MAX_LABELS, leaving out any label that would cover one already printed (crowded
    lesions made stacks of unreadable values); the printed labels."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for _, lesion in lesions.sort_values("voxels", ascending=False).iterrows():
        if len(placed) == MAX_LABELS:
            break
        ys, xs = np.nonzero((lesion_slice == lesion["lesion"]).T)
        colour = cmap(float(lesion["uncertainty"]))
        label = ax.annotate(
            f"{lesion['uncertainty']:.2f} ({lesion['status']})",
            (xs.max() + 2, ys.mean()),
            color=colour,
            fontsize=8,
            fontweight="bold",
            va="center",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "edgecolor": "none"},
        )
        extent = label.get_window_extent(renderer)
        if any(extent.overlaps(other.get_window_extent(renderer)) for other in placed):
            label.remove()
        else:
            placed.append(label)
    return placed


def draw_heldout_uncertainty_figure(lesions_tsv, out_png, *, pipeline: str, cohort_name: str) -> None:
    """Figure 4 of the five-fold ensemble on the held-out images (their lesion table with status)."""
    from .lesions import read_lesion_table

    uncertainty_figure(
        read_lesion_table(lesions_tsv),
        out_png,
        pipeline=pipeline,
        cohort_name=cohort_name,
        images="held-out images, five-fold ensemble",
    )


def draw_lesion_figures(
    lesions_tsv,
    cohort_tsv,
    segmentations_dir,
    fig4_png,
    fig5_png,
    *,
    pipeline: str,
    cohort_name: str,
) -> None:
    """Figures 4 and 5 from one pipeline's lesion table and post-processed segmentations."""
    from pathlib import Path

    from .arrays import label_components
    from .cohort import read_cohort
    from .io import load_nifti
    from .lesions import read_lesion_table

    lesions = read_lesion_table(lesions_tsv)
    uncertainty_figure(lesions, fig4_png, pipeline=pipeline, cohort_name=cohort_name)
    records = {r["subject"]: r for r in read_cohort(cohort_tsv)}
    cases = []
    for subject in pick_cases(lesions) if len(lesions) else []:
        seg = np.asarray(load_nifti(Path(segmentations_dir) / "postprocessed" / f"{subject}.nii.gz").dataobj)
        # numbered as lesions.lesion_table numbers them: components met in C order
        labelled, _ = label_components(seg == 2)
        image = load_nifti(records[subject]["image"]).get_fdata(dtype=np.float32)
        cases.append(
            {
                "subject": subject,
                "image": image,
                "lesions": labelled,
                "table": lesions[lesions["subject"] == subject],
            }
        )
    cases_figure(cases, fig5_png, pipeline=pipeline, cohort_name=cohort_name)


def synthetic_examples_figure(cases: list[dict], path) -> None:
    """docs/synthetic.md's figure: per case (one subject per phase), an axial slice with
    the liver (label 1 and 2) and tumour (label 2) outlined.

    `cases`: dicts with subject, phase, image and label (2D slices), slice, spacing.
    """
    fig, axes = plt.subplots(1, len(cases), figsize=(3.6 * len(cases), 3.9), squeeze=False)
    for ax, case in zip(axes[0], cases):
        image = case["image"]
        low, high = np.percentile(image[image > 0], (1, 99.5)) if (image > 0).any() else (0, 1)
        ax.imshow(image.T, cmap="gray", origin="lower", vmin=low, vmax=high)
        ax.contour((case["label"] > 0).T, levels=[0.5], colors=["#4dac26"], linewidths=1.0)
        ax.contour((case["label"] == 2).T, levels=[0.5], colors=["#d7191c"], linewidths=1.0)
        sx, _, sz = case["spacing"]
        ax.set_title(
            f"{case['phase']}\n{case['subject']}, slice {case['slice']} ({sx:.2f} mm, {sz:.1f} mm thick)",
            fontsize=9,
        )
        ax.axis("off")
    fig.suptitle("Synthetic cohort: one subject per phase (green: liver, red: tumour)")
    save(fig, path)
