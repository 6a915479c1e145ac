"""liverseg.synthetic_summary: the measurements behind docs/synthetic.md."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.synthetic import draw_subject
from liverseg.synthetic_summary import (
    MARKERS,
    best_threshold_dice,
    cohort_table,
    subject_statistics,
    write_summary,
)


def test_best_threshold_dice_is_one_when_a_threshold_separates_either_way():
    values = np.array([1.0, 2.0, 3.0, 10.0, 11.0])
    assert best_threshold_dice(values, values > 5) == pytest.approx(1.0)  # bright tumour
    assert best_threshold_dice(-values, values > 5) == pytest.approx(1.0)  # dark tumour
    # interleaved: the best is to call the top 3 tumour (2 of 2 found, 1 wrong) -> 2*2/(3+2)
    assert best_threshold_dice(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 0, 1], bool)) == pytest.approx(0.8)


def test_subject_statistics_counts_the_label_maps_lesions_and_phase_contrast():
    arterial = draw_subject(0, 4, "arterial", 4.0)
    portal = draw_subject(0, 4, "portal", 4.0)  # same anatomy, other phase
    row, lesions = subject_statistics(arterial, "im4")
    assert row["lesions"] == len(lesions) >= 1
    assert row["tumor_ml"] == pytest.approx(sum(lesion["volume_ml"] for lesion in lesions))
    assert 0 < row["burden"] < 1
    assert row["ratio"] > 1 and row["cnr"] > 0  # HCC enhances in the arterial phase
    washout, _ = subject_statistics(portal, "im4")
    assert washout["ratio"] < 1 and washout["cnr"] < 0 and washout["lesions"] == row["lesions"]


def test_cohort_table_has_a_column_per_scale(tmp_path):
    rows = {
        s: ([subject_statistics(draw_subject(0, i, "arterial", s), f"im{i}") for i in range(2)]) for s in (4.0, 6.0)
    }
    import pandas as pd

    frames = {
        s: (pd.DataFrame([r for r, _ in v]), pd.DataFrame([x for _, lesions in v for x in lesions]))
        for s, v in rows.items()
    }
    table = cohort_table(frames)
    assert list(table.columns) == ["measure", "scale 4", "scale 6"]
    assert table.set_index("measure").loc["subjects"].tolist() == ["2", "2"]


def test_write_summary_fills_only_the_marked_section(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"before\n{MARKERS[0]}\nstale text\n{MARKERS[1]}\nafter\n")
    write_summary(
        page,
        tmp_path / "examples.png",
        subjects=2,
        scales=(6.0,),
        contrast_subjects=1,
        contrast_scale=6.0,
        figure_scale=6.0,
    )
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "stale text" not in text
    assert "| measure | scale 6 |" in text and "| arterial |" in text
    assert (tmp_path / "examples.png").read_bytes()[:4] == b"\x89PNG"
