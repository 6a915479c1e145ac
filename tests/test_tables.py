"""Tables 1-3: counts, cells that follow from the per-subject metrics, and the three formats."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from liverseg import io
from liverseg.errors import InputError
from liverseg.metrics import METRIC_KEYS
from liverseg.stats import compare_pipelines
from liverseg.tables import (
    BEST_MARK,
    dice_by_phase,
    table1,
    table2,
    table2_values,
    table3,
    to_latex,
    to_markdown,
    write_table_files,
)


def folds_and_phases():
    subjects = [f"im{i}" for i in range(10)]
    phases = dict(zip(subjects, ["A", "A", "A", "A", "P", "P", "D", "NC", "U", "A"]))
    folds = []
    for k in range(5):  # tests partition the cohort; validation is the next pair
        test = subjects[2 * k : 2 * k + 2]
        validation = subjects[(2 * k + 2) % 10 : (2 * k + 2) % 10 + 2]
        train = [s for s in subjects if s not in test + validation]
        folds.append({"fold": k + 1, "train": train, "validation": validation, "test": test})
    return {"seed": 0, "folds": folds}, phases


def test_table1_counts():
    folds, phases = folds_and_phases()
    t = table1(folds, phases)
    assert t[("Fold", "")].tolist() == [1, 2, 3, 4, 5]
    assert [g for g, _ in t.columns[1:6]] == ["Training (N=6)"] * 5
    assert [p for _, p in t.columns[1:6]] == ["A", "D", "NC", "P", "U"]
    assert (t["Training (N=6)"].sum(axis=1) == 6).all()
    assert (t["Validation (N=2)"].sum(axis=1) == 2).all()
    # the test splits partition the cohort: their counts add up to the cohort's phases
    totals = t["Test (N=2)"].sum()
    assert totals.to_dict() == {"A": 5, "D": 1, "NC": 1, "P": 2, "U": 1}
    assert t.loc[0, ("Test (N=2)", "A")] == 2  # im0, im1


def test_table1_rejects_unknown_subjects_and_phases():
    folds, phases = folds_and_phases()
    del phases["im3"]
    with pytest.raises(InputError, match="im3"):
        table1(folds, phases)
    folds, phases = folds_and_phases()
    phases["im3"] = "arterial"
    with pytest.raises(InputError, match="arterial"):
        table1(folds, phases)


def metrics_frame(n=4, seed=0, **columns):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({k: rng.uniform(0.1, 0.9, n) for k in METRIC_KEYS})
    frame.insert(0, "subject", [f"im{i}" for i in range(n)])
    for k, v in columns.items():
        frame[k] = v
    return frame


def test_table2_cells_follow_from_the_subjects():
    multi = metrics_frame(
        tumor_dice=[0.5, 0.7, np.nan, 0.9],
        liver_hd=[30.0, 50.0, 40.0, 40.0],
        tumor_burden_error=[0.01, 0.03, 0.02, 0.02],
    )
    dual = metrics_frame(seed=1, tumor_dice=[0.2, 0.3, 0.4, 0.5], liver_hd=[20.0, 20.0, 20.0, 20.0])
    t = table2({("dual_binary", "postprocessed"): dual, ("multiclass", "postprocessed"): multi})
    # paper order whatever the dict order
    assert list(t.columns) == [
        ("Region", ""),
        ("Metric", ""),
        ("Multi-class AHNet", "✓"),
        ("Dual binary AHNet", "✓"),
    ]
    assert t[("Region", "")].tolist() == ["Liver"] * 4 + ["Tumor"] * 5

    m = ("Multi-class AHNet", "✓")
    rows = t.set_index([("Region", ""), ("Metric", "")])
    tumor_dice = rows.loc[("Tumor", "Dice ↑"), m]
    assert tumor_dice == f"0.70 ± {np.std([0.5, 0.7, 0.9], ddof=1):.2f} (1 NaN)" + BEST_MARK  # 0.70 > 0.35
    liver_hd = rows.loc[("Liver", "HD (×10¹) ↓")]
    assert liver_hd[m] == f"4.00 ± {np.std([3, 5, 4, 4], ddof=1):.2f}"  # mm / 10
    assert liver_hd[("Dual binary AHNet", "✓")] == "2.00 ± 0.00" + BEST_MARK  # lower is better
    rmse = math.sqrt(np.mean(np.square([0.01, 0.03, 0.02, 0.02]))) * 100
    burden = rows.loc[("Tumor", "RMSE (×10⁻²) ↓"), m]
    assert burden.startswith(f"2.00 ± {np.std([1, 3, 2, 2], ddof=1):.2f} (RMSE {rmse:.2f})")


def test_table2_values_match_a_round_trip_through_tsv(tmp_path):
    frame = metrics_frame(n=6, tumor_hd=[1.0, np.nan, 3.0, np.nan, 5.0, 9.0])
    io.write_tsv(tmp_path / "m.tsv", frame)
    read = pd.read_csv(tmp_path / "m.tsv", sep="\t")
    values = table2_values({("multiclass", "raw"): read}).set_index(["region", "metric"])
    assert values.loc[("Tumor", "HD"), "mean"] == pytest.approx(4.5)
    assert values.loc[("Tumor", "HD"), "std"] == pytest.approx(np.std([1, 3, 5, 9], ddof=1))
    assert (values.loc[("Tumor", "HD"), "n"], values.loc[("Tumor", "HD"), "n_nan"]) == (4, 2)
    assert values.loc[("Liver", "SD"), "mean"] == pytest.approx(frame.liver_surface_dice.mean())
    assert values.loc[("Tumor", "RMSE"), "rmse"] == pytest.approx(np.sqrt(np.mean(frame.tumor_burden_error**2)))
    assert values.loc[("Liver", "HD"), "scale"] == 0.1 and values.loc[("Tumor", "RMSE"), "scale"] == 100


def test_table2_raw_and_unknown_pipelines_and_empty_columns():
    base = metrics_frame()
    all_nan = metrics_frame(tumor_hd=[np.nan] * 4)
    t = table2(
        {
            ("custom", "postprocessed"): base,
            ("dynunet", "raw"): all_nan,
            ("dynunet", "postprocessed"): base,
        }
    )
    assert list(t.columns)[2:] == [("DynUNet", "✓"), ("DynUNet", "×"), ("custom", "✓")]
    hd = t.set_index([("Region", ""), ("Metric", "")]).loc[("Tumor", "HD (×10¹) ↓")]
    assert hd[("DynUNet", "×")] == "– (4 NaN)"
    with pytest.raises(InputError, match="missing columns"):
        table2({("multiclass", "raw"): base.drop(columns="tumor_hd")})


def test_table3_layout():
    rng = np.random.default_rng(0)
    m, b = metrics_frame(n=20, seed=2), metrics_frame(n=20, seed=3)
    b["liver_dice"] = m.liver_dice + rng.normal(0.1, 0.02, 20)
    tests = compare_pipelines(m, b)
    t = table3(tests)
    names = [c[0] for c in t.columns]
    assert names == ["Region", "Metric", "Shapiro p-value", "Hypothesis", "Test", "p-value",
                     "Significance (p < 0.05)", "Holm p-value", "n"]  # fmt: skip
    row = t[t[("Metric", "")] == "Dice ↑"].iloc[0]
    assert row[("Hypothesis", "")] == "B > M" and row[("Significance (p < 0.05)", "")] == "✓"
    assert row[("p-value", "")] == f"{tests.p_value[1]:.1e}"
    assert row[("Holm p-value", "")] == f"{tests.p_holm[1]:.1e}"


def test_write_table_files_three_formats(tmp_path):
    t = table2(
        {
            ("multiclass", "postprocessed"): metrics_frame(),
            ("multiclass", "raw"): metrics_frame(seed=5),
        }
    )
    paths = write_table_files(t, tmp_path / "tables" / "table2_metrics", caption="Metrics & more")
    assert [p.name for p in paths] == [
        "table2_metrics.tsv",
        "table2_metrics.md",
        "table2_metrics.tex",
    ]
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == sorted(p.name for p in paths)

    tsv = pd.read_csv(paths[0], sep="\t")
    assert list(tsv.columns) == ["Region", "Metric", "Multi-class AHNet ✓", "Multi-class AHNet ×"]
    assert tsv.iloc[:, 2:].apply(lambda c: c.str.endswith(BEST_MARK)).to_numpy().sum(axis=1).min() >= 1

    md = paths[1].read_text()
    assert md.startswith("| Region | Metric | Multi-class AHNet ✓ |")
    assert md.count("**") >= 2 * 9 and " *" not in md.replace("**", "")
    assert md.rstrip().endswith(": Metrics & more")

    tex = paths[2].read_text()
    assert "\\multicolumn{2}{c}{Multi-class AHNet}" in tex and "\\textbf{" in tex
    assert "\\caption{Metrics \\& more}" in tex and "$\\pm$" in tex and "$\\times10^{1}$" in tex
    assert "±" not in tex and "✓" not in tex


def test_markdown_and_latex_escape_and_flat_tables(tmp_path):
    frame = pd.DataFrame({"name": ["a|b", "x_y 50%"], "value": [1.5, float("nan")]})
    md = to_markdown(frame)
    assert "a\\|b" in md and "| NaN |" in md
    tex = to_latex(frame)
    assert "x\\_y 50\\%" in tex and "\\multicolumn" not in tex
    with pytest.raises(InputError, match="formats"):
        write_table_files(frame, tmp_path / "t", formats=("csv",))


def test_every_table_tsv_holds_full_precision_only_markdown_rounds(tmp_path):
    """The workflow's table jobs: each TSV holds the unrounded numbers (p-values as
    compare_pipelines gives them, Table 2's means and deviations, AUROC, held-out means);
    Markdown and LaTeX round."""
    from liverseg.workflow.jobs import heldout_table_job, lesion_auroc_job, table2_job, table3_job

    rng = np.random.default_rng(1)
    m, b = metrics_frame(n=20, seed=2), metrics_frame(n=20, seed=3)
    b["liver_dice"] = m.liver_dice + rng.normal(0.1, 0.02, 20)
    for name, frame in (("m", m), ("b", b)):
        io.write_tsv(tmp_path / f"{name}.tsv", frame)
    m, b = (pd.read_csv(tmp_path / f"{name}.tsv", sep="\t") for name in ("m", "b"))

    table3_job(tmp_path / "m.tsv", tmp_path / "b.tsv", tmp_path / "table3", alpha=0.05)
    tsv = pd.read_csv(tmp_path / "table3.tsv", sep="\t")
    expected = compare_pipelines(m, b, "M", "B")
    for column in ("shapiro_p", "p_value", "p_holm"):
        assert tsv[column].to_numpy() == pytest.approx(expected[column].to_numpy(), rel=1e-12, nan_ok=True)
    assert f"{expected.p_value[1]:.1e}" in (tmp_path / "table3.md").read_text()

    table2_job({"multiclass/postprocessed": tmp_path / "m.tsv"}, tmp_path / "table2")
    tsv = pd.read_csv(tmp_path / "table2.tsv", sep="\t").set_index(["region", "metric"])
    assert tsv.loc[("Liver", "Dice"), "mean"] == pytest.approx(m.liver_dice.mean(), rel=1e-12)
    assert tsv.loc[("Liver", "Dice"), "std"] == pytest.approx(m.liver_dice.std(ddof=1), rel=1e-12)
    assert f"{m.liver_dice.mean():.2f} ± " in (tmp_path / "table2.md").read_text()

    lesions = pd.DataFrame(
        {
            "uncertainty": rng.uniform(0, 1, 30),
            "volume_mm3": rng.uniform(1, 1e4, 30),
            "status": ["TP", "FP", "TP"] * 10,
        }
    )
    lesions.to_csv(tmp_path / "lesions.tsv", sep="\t", index=False)
    lesion_auroc_job({"multiclass": tmp_path / "lesions.tsv"}, tmp_path / "auroc")
    rho = pd.read_csv(tmp_path / "auroc.tsv", sep="\t")["Spearman (uncertainty, log volume)"][0]
    assert rho != round(rho, 3) and f"| {round(rho, 3)} |" in (tmp_path / "auroc.md").read_text()

    scores = metrics_frame(n=3, seed=4).assign(pipeline="multiclass", model="ensemble")
    io.write_tsv(tmp_path / "heldout.tsv", scores)
    heldout_table_job([tmp_path / "heldout.tsv"], tmp_path / "heldout_scores")
    tsv = pd.read_csv(tmp_path / "heldout_scores.tsv", sep="\t")
    assert tsv["liver_dice"][0] == pytest.approx(scores.liver_dice.mean(), rel=1e-12)


def test_lesion_auroc_table_has_held_out_rows_where_given(tmp_path):
    """The AUROC table: one row per pipeline for the cross-validation, and one per
    pipeline for the held-out ensemble when its scored lesion table is given."""
    from liverseg.lesions import uncertainty_auroc
    from liverseg.workflow.jobs import lesion_auroc_job

    cv = pd.DataFrame(
        {
            "uncertainty": [0.1, 0.2, 0.9],
            "volume_mm3": [10.0, 20.0, 30.0],
            "status": ["TP", "TP", "FP"],
        }
    )
    heldout = pd.DataFrame(
        {
            "uncertainty": [0.1, 0.8, 0.3, 0.6],
            "volume_mm3": [5.0, 9.0, 7.0, 3.0],
            "status": ["TP", "TP", "FP", "FP"],
        }
    )
    cv.to_csv(tmp_path / "cv.tsv", sep="\t", index=False)
    heldout.to_csv(tmp_path / "heldout.tsv", sep="\t", index=False)
    lesion_auroc_job(
        {"multiclass": tmp_path / "cv.tsv"},
        tmp_path / "auroc",
        heldout_tsvs={"multiclass": tmp_path / "heldout.tsv"},
    )
    tsv = pd.read_csv(tmp_path / "auroc.tsv", sep="\t")
    assert tsv["images"].tolist() == ["cross-validation", "held-out (ensemble)"]
    assert tsv[["lesions", "TP", "FP"]].values.tolist() == [[3, 2, 1], [4, 2, 2]]
    assert tsv["AUROC (FP vs TP)"].tolist() == pytest.approx([1.0, uncertainty_auroc(heldout)])
    lesion_auroc_job({"multiclass": tmp_path / "cv.tsv"}, tmp_path / "cv_only")
    assert pd.read_csv(tmp_path / "cv_only.tsv", sep="\t")["images"].tolist() == ["cross-validation"]


def test_lesion_detection_table_counts_each_pipelines_lesions_by_diameter(tmp_path):
    """One row per pipeline and size: lesions, detected, recall; the >= 10 mm row is the
    reproduction's target, and a size without lesions has no recall (NaN), not 0."""
    from liverseg.workflow.jobs import lesion_detection_job

    truth = pd.DataFrame({"diameter_mm": [4.0, 12.0, 25.0, 30.0], "detected": [False, True, False, True]})
    truth.to_csv(tmp_path / "multiclass.tsv", sep="\t", index=False)
    truth.iloc[:1].to_csv(tmp_path / "dynunet.tsv", sep="\t", index=False)
    lesion_detection_job(
        {"multiclass": tmp_path / "multiclass.tsv", "dynunet": tmp_path / "dynunet.tsv"}, tmp_path / "d"
    )
    tsv = pd.read_csv(tmp_path / "d.tsv", sep="\t")
    assert tsv["lesion diameter"].tolist() == ["< 10 mm", "10-20 mm", ">= 20 mm", ">= 10 mm"] * 2
    multiclass = tsv[tsv["pipeline"] == "multiclass"]
    assert multiclass[["lesions", "detected"]].values.tolist() == [[1, 0], [1, 1], [2, 1], [3, 2]]
    assert multiclass["recall"].tolist() == pytest.approx([0.0, 1.0, 0.5, 2 / 3])
    assert tsv[tsv["pipeline"] == "dynunet"]["recall"].isna().tolist() == [False, True, True, True]
    assert "Held-out lesions detected" in (tmp_path / "d.md").read_text()


def test_dice_by_phase_means_each_phase_per_set_and_pipeline(tmp_path):
    """Each set has its own phases (held-out images may reuse training names), only the
    held-out ensemble's rows count, and a subject without a phase is named."""
    from liverseg.workflow.jobs import phase_table_job

    cv = pd.DataFrame({"subject": ["im0", "im1", "im2"], "liver_dice": [0.9, 0.7, 0.8], "tumor_dice": [0.6, 0.0, 0.2]})
    heldout = pd.DataFrame(
        {
            "subject": ["im0", "im0", "im1"],
            "model": ["ensemble", "fold1", "ensemble"],
            "liver_dice": [0.95, 0.1, 0.85],
            "tumor_dice": [0.5, 0.0, 0.1],
        }
    )
    phases = {"cross-validation": {"im0": "A", "im1": "P", "im2": "A"}, "held-out": {"im0": "P", "im1": "P"}}
    table = dice_by_phase({("cross-validation", "multiclass"): cv, ("held-out", "multiclass"): heldout}, phases)
    rows = {(r.set, r.phase): r for r in table.itertuples(index=False)}
    assert list(rows) == [
        ("cross-validation", "A"),
        ("cross-validation", "P"),
        ("cross-validation", "all"),
        ("held-out", "P"),
        ("held-out", "all"),
    ]
    a = table.iloc[0]
    assert a["subjects"] == 2
    assert a["Multi-class AHNet liver Dice"] == pytest.approx(0.85)
    assert a["Multi-class AHNet tumour Dice"] == pytest.approx(0.4)
    held = table[(table["set"] == "held-out") & (table["phase"] == "P")].iloc[0]
    assert held["subjects"] == 2 and held["Multi-class AHNet liver Dice"] == pytest.approx(0.9)
    with pytest.raises(InputError, match=r"subjects without a contrast phase: \['im2'\]"):
        dice_by_phase({("cross-validation", "dynunet"): cv}, {"cross-validation": {"im0": "A", "im1": "P"}})

    # The job: phases from cohort.tsv and from the held-out patient_info JSON ("N" or "imN" keys).
    cv.to_csv(tmp_path / "cv.tsv", sep="\t", index=False)
    heldout.to_csv(tmp_path / "heldout.tsv", sep="\t", index=False)
    cohort = {
        "subject": ["im0", "im1", "im2"],
        "phase": ["A", "P", "A"],
        "spacing": ["1,1,2"] * 3,
        "shape": ["8,8,4"] * 3,
    }
    pd.DataFrame(cohort).to_csv(tmp_path / "cohort.tsv", sep="\t", index=False)
    info = {"0": {"contrast_phase": "portal"}, "im1": {"contrast_phase": "delayed"}}
    (tmp_path / "info.json").write_text(json.dumps(info))
    metrics = {"cross-validation/dynunet": tmp_path / "cv.tsv", "held-out/dynunet": tmp_path / "heldout.tsv"}
    phase_table_job(metrics, tmp_path / "cohort.tsv", tmp_path / "phase_dice", tmp_path / "info.json")
    written = pd.read_csv(tmp_path / "phase_dice.tsv", sep="\t")
    assert list(zip(written["set"], written["phase"])) == [
        ("cross-validation", "A"),
        ("cross-validation", "P"),
        ("cross-validation", "all"),
        ("held-out", "D"),
        ("held-out", "P"),
        ("held-out", "all"),
    ]
    assert written.loc[3, "DynUNet liver Dice"] == pytest.approx(0.85)
    assert "| held-out | P | 1 | 0.95 | 0.5 |" in (tmp_path / "phase_dice.md").read_text()
