"""Figures 4 and 5 are drawn for any lesion table, including one without lesions."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from liverseg.figures import cases_figure, uncertainty_figure
from liverseg.lesions import COLUMNS, lesion_table
from liverseg.postprocess import label_components


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
    cases = [] if empty else [{"subject": "im0", "image": seg.astype(np.float32),
                              "lesions": label_components(seg == 2)[0], "table": table}]
    cases_figure(cases, fig5, pipeline="multiclass", cohort_name="test")
    for png in (fig4, fig5):
        pixels = mpimg.imread(png)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.std() > 0  # a drawn image, not a blank one
    if not empty:
        assert sorted(table["status"]) == ["FP", "TP"]
