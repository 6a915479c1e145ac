"""Figures 4 and 5 are drawn for any lesion table, including one without lesions."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from liverseg.arrays import label_components
from liverseg.figures import cases_figure, uncertainty_figure
from liverseg.lesions import COLUMNS, lesion_table


def crafted_case():
    seg = np.zeros((24, 24, 6), np.uint8)
    seg[2:22, 2:22, 1:5] = 1
    seg[4:7, 4:7, 2] = 2  # a confident lesion on the ground truth: TP
    seg[15:18, 15:19, 2] = 2  # an uncertain one outside it: FP
    prob = np.zeros(seg.shape, np.float32)
    prob[4:7, 4:7, 2] = 0.9
    prob[15:18, 15:19, 2] = 0.3
    truth = np.zeros_like(seg)
    truth[4:7, 4:7, 2] = 2
    table = lesion_table(seg, prob, (2.0, 2.0, 5.0), truth, "im0")
    return seg, table


@pytest.mark.parametrize("empty", [False, True])
def test_figures_4_and_5_are_written_with_and_without_lesions(tmp_path, empty):
    seg, table = crafted_case()
    if empty:  # a model that predicts no tumour at all
        table = table.iloc[0:0]
        assert list(table.columns) == COLUMNS
    fig4, fig5 = tmp_path / "fig4.png", tmp_path / "fig5.png"
    uncertainty_figure(table, fig4, pipeline="multiclass", cohort_name="test")
    cases = (
        []
        if empty
        else [
            {
                "subject": "im0",
                "image": seg.astype(np.float32),
                "lesions": label_components(seg == 2)[0],
                "table": table,
            }
        ]
    )
    cases_figure(cases, fig5, pipeline="multiclass", cohort_name="test")
    for png in (fig4, fig5):
        pixels = mpimg.imread(png)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.std() > 0  # a drawn image, not a blank one
    if not empty:
        assert sorted(table["status"]) == ["FP", "TP"]


def test_figure2_follows_the_configured_models_and_postprocessing(tmp_path):
    """Figure 2 is drawn from the config: each pipeline's models with their patch sizes
    (an "auto" one resolved from the analysis) and encoder, its step 2, the radii; only
    the paper's two pipelines, only when configured."""
    import json

    from liverseg.figures import draw_pipelines_figure
    from liverseg.pipelines import describe_pipeline

    models = {
        "ahnet_multiclass": {
            "network": "ahnet",
            "task": "multiclass",
            "patch_size": [256, 256, 64],
        },
        "ahnet_liver": {"network": "ahnet", "task": "liver", "patch_size": [256, 256, 64]},
        "ahnet_tumor": {"network": "ahnet", "task": "tumor", "patch_size": "auto"},
        "dynunet_multiclass": {
            "network": "dynunet",
            "task": "multiclass",
            "patch_size": [64, 64, 32],
        },
    }
    sizes = {
        "ahnet_multiclass": [256, 256, 64],
        "ahnet_liver": [256, 256, 64],
        "ahnet_tumor": [96, 96, 32],
    }
    multi = describe_pipeline("multiclass", models, sizes, encoder="imagenet", dilation_mm=5, closing_mm=3)
    dual = describe_pipeline("dual_binary", models, sizes, encoder="slices", dilation_mm=5, closing_mm=3)
    assert multi.models == ["ahnet_multiclass\nAHNet, 3 classes\n256×256×64 patches\nImageNet encoder"]
    assert [m.splitlines()[0] for m in dual.models] == ["ahnet_liver", "ahnet_tumor"]
    assert "96×96×32 patches" in dual.models[1] and "2.5D-pretrained encoder" in dual.models[1]
    assert "within 5 mm" in multi.postprocess[1] and dual.postprocess[1] == "2. tumour AND liver"
    assert all("(3 mm)" in p.postprocess[2] for p in (multi, dual))

    (tmp_path / "patch_sizes.json").write_text(json.dumps({"recommended": {"tumor": [96, 96, 32]}}))
    rules = {"train": "train", "predict": "predict", "segment": "segment"}
    draw_pipelines_figure(
        tmp_path / "patch_sizes.json",
        tmp_path / "fig2.png",
        models=models,
        encoder="imagenet",
        postprocess={"dilation_mm": 5, "closing_mm": 3},
        rules=rules,
    )
    pixels = mpimg.imread(tmp_path / "fig2.png")
    assert pixels.shape[1] > pixels.shape[0] > 500  # two rows of boxes, wide


def test_figure5_labels_never_cover_each_other():
    """Crowded lesions: the largest is labelled, no two printed labels overlap, and
    the labels that would have are left out (at most MAX_LABELS in any case)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from liverseg.figures import MAX_LABELS, label_lesions

    lesion_slice = np.zeros((120, 100), np.int32)
    rows = []
    for n in range(1, 11):  # ten lesions side by side on one row, two voxels apart
        lesion_slice[10 * n : 10 * n + 2, 50:52] = n
        rows.append({"lesion": n, "voxels": 100 - n, "uncertainty": 0.1 * (n % 10), "status": "FP"})
    lesion_slice[5:8, 90:93] = 11  # one far from the others
    rows.append({"lesion": 11, "voxels": 1, "uncertainty": 0.5, "status": "TP"})
    fig, ax = plt.subplots(figsize=(5.5, 5.2))
    ax.imshow(lesion_slice.T, origin="lower")
    placed = label_lesions(ax, pd.DataFrame(rows), lesion_slice, plt.get_cmap("plasma"))
    renderer = fig.canvas.get_renderer()
    extents = [label.get_window_extent(renderer) for label in placed]
    assert placed[0].get_text() == "0.10 (FP)"  # the largest lesion's
    assert len(placed) <= MAX_LABELS
    assert "0.20 (FP)" not in [label.get_text() for label in placed]  # the second largest, crowded out
    assert not any(a.overlaps(b) for i, a in enumerate(extents) for b in extents[i + 1 :])
    assert "0.50 (TP)" in [label.get_text() for label in placed]  # the lone lesion keeps its label
    plt.close(fig)
