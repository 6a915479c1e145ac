"""The workflow's wiring, and the workflow end to end through Snakemake.

- read from the rule files (fast): every rule that does work writes a benchmark file
  under benchmarks/rules/<rule>, which `liverseg costs` sums per rule; rules name their
  input functions and the values they pass (no lambdas, no config sections splatted); the
  report's front page renders, as valid reStructuredText, for every config; config/README.md
  has a section for every top-level key of the schema and names every config file;
- `snakemake --lint` reports nothing;
- on a folder in the ATLAS layout, config/config.yaml plans the paper's DAG: 20 training
  jobs (5 folds x 4 models), each asking for one GPU;
- the whole DAG on tests/configs/tiny.yaml (run once per session: the `tiny_dag` fixture
  in conftest.py) writes every table and figure; Table 2's cells follow from the
  per-subject metrics; `snakemake --report` gathers the tables and figures with their
  captions; a second run has nothing to do.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import make_atlas
from docutils.core import publish_parts
from jinja2 import Environment, StrictUndefined
from workflow_helpers import (
    CORES,
    TINY,
    copy_workflow,
    job_stats,
    planned_jobs,
    run_snakemake,
    snapshot,
)

from liverseg.config import validate_config
from liverseg.workflow.run_costs import write_rule_costs, write_training

MODELS = ("ahnet_multiclass", "ahnet_liver", "ahnet_tumor", "dynunet_multiclass")
PIPELINES = ("multiclass", "dual_binary", "dynunet")
TINY_FOLDS = (1, 2, 3)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
AGGREGATION_RULES = {"all"}  # no work of its own: no benchmark


def rule_blocks() -> dict[str, str]:
    """Each rule's text (from its `rule` line to the next top-level line), by name."""
    blocks = {}
    for path in RULE_FILES:
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", path.read_text(), flags=re.M):
            blocks[match.group(1)] = match.group(2)
    return blocks


def test_every_rule_that_works_writes_a_benchmark_named_for_it():
    """`liverseg costs` takes a job's rule from the first folder (or the file name) below
    benchmarks/rules: the rule's own name."""
    blocks = rule_blocks()
    assert len(blocks) > 20 and AGGREGATION_RULES <= set(blocks)
    for rule, block in blocks.items():
        match = re.search(r"^    benchmark:\n\s+f\"\{RESULTS\}/benchmarks/rules/([^\"]+)\.tsv\"", block, flags=re.M)
        if rule in AGGREGATION_RULES:
            assert match is None, rule
            continue
        assert match, f"rule {rule}: no benchmark under {{RESULTS}}/benchmarks/rules/"
        assert match.group(1).split("/")[0] == rule, f"rule {rule}: benchmark {match.group(1)} is not named for it"


def test_rules_name_what_they_pass():
    """Input functions are named (`get_*` in common.smk), and params name each value a
    script needs rather than splatting a config section."""
    for path in RULE_FILES:
        text = path.read_text()
        assert "lambda" not in text, f"{path.name}: a lambda"
        assert not re.search(r"^\s+\*\*config", text, flags=re.M), f"{path.name}: params splat a config section"


# config file, overrides -> what the front page says of the cohort
FRONT_PAGES = {
    "atlas": ("config.yaml", {}, "ATLAS 2023 training data"),
    "atlas_heldout": ("config.yaml", {"test_images": "test/im", "test_labels": "test/lb"}, "scored against the labels"),
    "demo": ("demo.yaml", {}, "synthetic cohort"),
    "synthetic": ("synthetic.yaml", {}, "synthetic cohort"),
}


@pytest.mark.parametrize("case", FRONT_PAGES)
def test_report_front_page_renders_for_every_config(case):
    """workflow/report/workflow.rst through Jinja as `snakemake --report` renders it (its
    settings, the config with the schema's defaults), then docutils, stopping on a warning."""
    name, dataset, expected = FRONT_PAGES[case]
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    config["dataset"].update(dataset)
    validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")
    snakemake = type("Snakemake", (), {"config": config})
    env = Environment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    text = env.from_string((ROOT / "workflow/report/workflow.rst").read_text()).render(snakemake=snakemake)
    assert expected in text
    html = publish_parts(text, writer="html", settings_overrides={"halt_level": 2})["html_body"]
    assert "How to read the results" in html


def test_config_readme_explains_every_section_and_file():
    readme = (ROOT / "config" / "README.md").read_text()
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    sections = re.findall(r"^### `(\w+)`", readme, flags=re.M)
    assert sections == list(schema["properties"]), "config/README.md: one section per key, in the schema's order"
    for path in (ROOT / "config").glob("*.yaml"):
        assert f"`{path.name}`" in readme, f"config/README.md does not describe {path.name}"


@pytest.mark.slow
def test_lint_reports_nothing(tmp_path):
    work = copy_workflow(tmp_path)
    run = run_snakemake(work, "--lint", "--configfile", "config/demo.yaml")
    assert run.returncode == 0 and "Lints for" not in run.output, run.tail()


# ahnet.encoder -> (the encoder file of an AHNet training job of fold k, the rule that makes it, its jobs)
ENCODER_FILES = {
    "imagenet": ("resources/imagenet/resnet50-0676ba61.pth", "imagenet_weights", 1),
    "slices": ("results/models/encoder/fold{k}/encoder.pt", "pretrain_encoder", 5),
    "none": (None, None, 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ENCODER_FILES)
def test_dry_run_on_atlas_layout_plans_gpu_training(tmp_path, encoder):
    """config/config.yaml (the ImageNet encoder) and its alternatives: the weights rule
    planned once and every AHNet training job waiting for its encoder; only "none" has
    AHNet jobs without one."""
    work = copy_workflow(tmp_path / "work")
    root = make_atlas(tmp_path / "train", n_subjects=16)
    overrides = [] if encoder == "imagenet" else [f"ahnet={{encoder: {encoder}}}"]
    run = run_snakemake(
        work,
        "-n",
        "--configfile",
        "config/config.yaml",
        "--config",
        f"dataset={{source: atlas, root: '{root}'}}",
        *overrides,
    )
    assert run.returncode == 0, run.tail()
    stats = job_stats(run.output)
    assert stats["train"] == 20 and stats["predict"] == 4, stats
    path, rule, count = ENCODER_FILES[encoder]
    for other, (_, other_rule, _) in ENCODER_FILES.items():
        if other_rule:
            assert stats.get(other_rule, 0) == (count if other == encoder else 0), stats
    jobs = planned_jobs(run.output)
    assert sum(stats.values()) == len(jobs)
    train = [j for j in jobs if j["rule"] == "train"]
    assert {(j["wildcards"]["model"], j["wildcards"]["fold"]) for j in train} == {
        (m, str(f)) for m in MODELS for f in range(1, 6)
    }
    for job in train:
        k, ahnet = job["wildcards"]["fold"], job["wildcards"]["model"].startswith("ahnet")
        expected = path.format(k=k) if path and ahnet else None
        assert [p for p in job["input"] if "imagenet" in p or "encoder" in p] == ([expected] if expected else []), job
    for job in jobs:  # the GPU jobs ask for one GPU; nothing else asks for one
        expected = "1" if job["rule"] in ("train", "pretrain_encoder", "predict") else None  # not imagenet_weights
        assert job["resources"].get("gpu") == expected, job
    assert not (work / "results").exists()  # a dry run writes nothing


# --------------------------------------------------------------------------- tiny DAG


def cohort_subjects(results: Path) -> list[str]:
    return pd.read_csv(results / "cohort/cohort.tsv", sep="\t")["subject"].tolist()


@pytest.mark.slow
def test_tiny_dag_writes_every_table_and_figure(tiny_dag):
    work, _ = tiny_dag
    results = work / "results"
    subjects = cohort_subjects(results)
    assert len(subjects) == 15
    heldout = sorted(p.name for p in (results / "synthetic/test/imagesTs").glob("im*.nii.gz"))
    assert len(heldout) == 2

    tables = [f"table1_folds.{x}" for x in ("tsv", "md")] + [f"table2_metrics.{x}" for x in ("tsv", "md", "tex")]
    tables += [f"table3_tests.{x}" for x in ("tsv", "md", "tex")]
    tables += [
        f"{stem}.{x}"
        for stem in ("lesion_uncertainty", "heldout_scores", "lesion_detection", "learning", "phase_dice")
        for x in ("tsv", "md")
    ]
    figures = [
        "fig1_spacing.png",
        "fig2_pipelines.png",
        "fig3_boxes.png",
        "fig4_uncertainty.png",
        "fig5_cases.png",
    ]
    figures += [f"fig{n}_{p}.png" for n in ("4_uncertainty", "5_cases", "4_uncertainty_heldout") for p in PIPELINES]
    expected = [f"tables/{t}" for t in tables] + [f"figures/{f}" for f in figures]
    expected += [
        "cohort/cohort.tsv",
        "cohort/folds.json",
        "analysis/boxes.tsv",
        "analysis/patch_sizes.json",
    ]
    expected += [
        f"models/{m}/fold{k}/{name}"
        for m in MODELS
        for k in TINY_FOLDS
        for name in ("model.pt", "history.tsv", "curves.png")
    ]
    expected += [f"models/encoder/fold{k}/encoder.pt" for k in TINY_FOLDS]
    expected += [f"lesions/{p}.tsv" for p in PIPELINES] + [f"lesions/heldout_{p}.tsv" for p in PIPELINES]
    expected += [f"lesions/heldout_truth_{p}.tsv" for p in PIPELINES]
    expected += [
        f"metrics/{p}_{s}.tsv"
        for p in PIPELINES
        for s in ("raw", "postprocessed")
        if not (p == "dynunet" and s == "raw")
    ]
    expected += [f"metrics/heldout_{p}.tsv" for p in PIPELINES]
    expected += [
        f"segmentations/{p}/{s}/{subject}.nii.gz"
        for p in PIPELINES
        for s in ("raw", "postprocessed")
        for subject in subjects
    ]
    for p in PIPELINES:
        expected += [f"ensemble/{p}/ensemble/{name}" for name in heldout + ["lesions.tsv"]]
        expected += [f"ensemble/{p}/fold{k}/{name}" for k in TINY_FOLDS for name in heldout]
    missing = [path for path in expected if not (results / path).is_file() or (results / path).stat().st_size == 0]
    assert not missing, f"missing or empty: {missing}"

    for path in expected:
        if path.endswith(".png"):
            assert (results / path).read_bytes()[:8] == PNG_MAGIC, path
    assert not list(results.glob("models/*/fold*/checkpoint.pt"))  # training.keep_checkpoint: false
    half_written = [p for p in results.rglob(".*") if p.name != ".snakemake_timestamp"]
    assert not half_written, half_written

    folds = json.loads((results / "cohort/folds.json").read_text())["folds"]
    assert sorted(s for f in folds for s in f["test"]) == sorted(subjects)  # the test sets partition the cohort
    for p in PIPELINES:  # every cross-validation subject scored, held-out images scored against their labels
        for s in ("raw", "postprocessed"):
            if (results / f"metrics/{p}_{s}.tsv").exists():
                assert sorted(pd.read_csv(results / f"metrics/{p}_{s}.tsv", sep="\t")["subject"]) == sorted(subjects)
        assert len(pd.read_csv(results / f"metrics/heldout_{p}.tsv", sep="\t")) == len(heldout) * (1 + len(TINY_FOLDS))
    lesions = pd.read_csv(results / "lesions/multiclass.tsv", sep="\t", keep_default_na=False)
    assert set(lesions["status"]) <= {"TP", "FP"}
    auroc = pd.read_csv(results / "tables/lesion_uncertainty.tsv", sep="\t")
    assert auroc["images"].tolist() == ["cross-validation"] * 3 + ["held-out (ensemble)"] * 3
    for p in PIPELINES:  # the submission's table keeps no status; the held-out one marks every lesion
        blind = pd.read_csv(results / f"ensemble/{p}/ensemble/lesions.tsv", sep="\t", keep_default_na=False)
        scored = pd.read_csv(results / f"lesions/heldout_{p}.tsv", sep="\t", keep_default_na=False)
        assert set(blind["status"]) <= {""} and set(scored["status"]) <= {"TP", "FP"}
        assert scored[["subject", "lesion", "voxels"]].equals(blind[["subject", "lesion", "voxels"]])
        assert auroc[auroc.images.str.startswith("held-out") & (auroc.pipeline == p)]["lesions"].item() == len(scored)
    learning = pd.read_csv(results / "tables/learning.tsv", sep="\t")  # one row per model and fold, from its history
    assert list(zip(learning["model"], learning["fold"])) == [(m, k) for m in MODELS for k in TINY_FOLDS]
    for row in learning.itertuples(index=False):
        history = pd.read_csv(results / f"models/{row.model}/fold{row.fold}/history.tsv", sep="\t")
        validated = {c: f"val_dice_{c}" in history.columns for c in ("liver", "tumor")}
        assert validated == {"liver": row.model != "ahnet_tumor", "tumor": row.model != "ahnet_liver"}
        for c, present in validated.items():  # the last epoch's Dice, or empty for a class not segmented
            final = getattr(row, f"{c}_final")
            assert final == pytest.approx(history[f"val_dice_{c}"].iloc[-1]) if present else np.isnan(final)
    detection = pd.read_csv(results / "tables/lesion_detection.tsv", sep="\t")
    for p in PIPELINES:  # every labelled held-out lesion counted once among the three sizes
        truth = pd.read_csv(results / f"lesions/heldout_truth_{p}.tsv", sep="\t")
        assert set(truth["subject"]) <= {h.removesuffix(".nii.gz") for h in heldout} and len(truth)
        rows = detection[detection["pipeline"] == p]
        assert (
            rows["lesions"].iloc[:3].sum() == len(truth) and rows["detected"].iloc[:3].sum() == truth["detected"].sum()
        )


@pytest.mark.slow
def test_rule_costs_and_training_wait_of_the_run(tiny_dag, tmp_path):
    """`liverseg costs`' tables on a real run: every trained model's folds and epochs, the
    training loops' time split between waiting for data and stepping."""
    work, _ = tiny_dag
    results = work / "results"
    rules = write_rule_costs(results, tmp_path / "rule_costs").set_index("rule")
    assert {"train", "predict", "evaluate", "total"} <= set(rules.index)
    training = write_training(results, tmp_path / "training").set_index("model")
    assert list(training.index) == sorted(MODELS) + ["total"]
    assert (training.loc[list(MODELS), "folds"] == len(TINY_FOLDS)).all()
    histories = {
        m: [pd.read_csv(results / f"models/{m}/fold{k}/history.tsv", sep="\t") for k in TINY_FOLDS] for m in MODELS
    }
    for model, runs in histories.items():
        assert training.loc[model, "epochs"] == sum(len(h) for h in runs)
        assert training.loc[model, "data_s"] == pytest.approx(sum(h["data_seconds"].sum() for h in runs), abs=0.01)
    assert ((training.wait_share > 0) & (training.wait_share < 1)).all()
    assert (
        (tmp_path / "training.md").read_text().startswith("| model | folds | epochs | data_s | step_s | wait_share |")
    )


# Table 2 by hand: the paper's rows and columns, the scales it prints values in.
TABLE2_ROWS = [
    ("Liver", "ASD", "liver_assd", False),
    ("Liver", "Dice", "liver_dice", True),
    ("Liver", "HD", "liver_hd", False),
    ("Liver", "SD", "liver_surface_dice", True),
    ("Tumor", "ASD", "tumor_assd", False),
    ("Tumor", "Dice", "tumor_dice", True),
    ("Tumor", "HD", "tumor_hd", False),
    ("Tumor", "SD", "tumor_surface_dice", True),
    ("Tumor", "RMSE", "tumor_burden_error", False),
]
TABLE2_SCALES = {
    ("Liver", "HD"): 0.1,
    ("Tumor", "ASD"): 0.1,
    ("Tumor", "HD"): 0.1,
    ("Tumor", "RMSE"): 100.0,
}
TABLE2_COLUMNS = {
    ("multiclass", "postprocessed"): "Multi-class AHNet ✓",
    ("multiclass", "raw"): "Multi-class AHNet ×",
    ("dual_binary", "postprocessed"): "Dual binary AHNet ✓",
    ("dual_binary", "raw"): "Dual binary AHNet ×",
    ("dynunet", "postprocessed"): "DynUNet ✓",
}


def markdown_table(path: Path) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines]
    header = split[0]
    return [dict(zip(header, row)) for row in split[2:]]


@pytest.mark.slow
def test_table2_cells_follow_from_per_subject_metrics(tiny_dag):
    work, _ = tiny_dag
    results = work / "results"
    values = pd.read_csv(results / "tables/table2_metrics.tsv", sep="\t")  # the unrounded numbers
    md_rows = markdown_table(results / "tables/table2_metrics.md")
    assert [r["Region"] for r in md_rows] == [r[0] for r in TABLE2_ROWS]
    assert list(md_rows[0]) == ["Region", "Metric", *TABLE2_COLUMNS.values()]

    for i, (region, metric, column, higher) in enumerate(TABLE2_ROWS):
        assert md_rows[i]["Metric"].split()[0] == metric
        scale = TABLE2_SCALES.get((region, metric), 1.0)
        shown = {}
        for (pipeline, stage), title in TABLE2_COLUMNS.items():
            frame = pd.read_csv(results / f"metrics/{pipeline}_{stage}.tsv", sep="\t")
            per_subject = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
            present = per_subject[~np.isnan(per_subject)]
            mean, std = present.mean(), present.std(ddof=1)
            rmse = math.sqrt(np.mean(present**2))
            text = f"{mean * scale:.2f} ± {std * scale:.2f}"
            if metric == "RMSE":
                text += f" (RMSE {rmse * scale:.2f})"
            if len(present) < len(per_subject):
                text += f" ({len(per_subject) - len(present)} NaN)"
            cell = md_rows[i][title]
            assert cell.strip("*") == text, (region, metric, pipeline, stage, cell, text)
            shown[title] = round((rmse if metric == "RMSE" else mean) * scale, 2)

            row = values[(values.pipeline == pipeline) & (values.stage == stage) & (values.column == column)]
            assert len(row) == 1
            row = row.iloc[0]
            assert row["mean"] == pytest.approx(mean, rel=1e-9) and row["std"] == pytest.approx(std, rel=1e-9)
            assert (row["n"], row["n_nan"]) == (len(present), len(per_subject) - len(present))
        best = (max if higher else min)(shown.values())
        marked = {title for title in TABLE2_COLUMNS.values() if md_rows[i][title].startswith("**")}
        assert marked == {title for title, v in shown.items() if v == best}, (region, metric, shown)


@pytest.mark.slow
def test_report_gathers_tables_and_figures(tiny_dag):
    work, _ = tiny_dag
    run = run_snakemake(work, "--configfile", TINY, "--report", "results/report.html")
    assert run.returncode == 0, run.tail()
    html = (work / "results/report.html").read_text()
    match = re.search(r"var results = (\{.*?\});\s*</script>", html, re.S)
    assert match, "no results in the report"
    entries = json.loads(match.group(1))
    assert "This report holds every table and figure" in html  # workflow/report/workflow.rst
    expected = [
        "tables/table1_folds.md",
        "tables/table2_metrics.md",
        "tables/table3_tests.md",
        "tables/lesion_uncertainty.md",
        "tables/heldout_scores.md",
        "tables/lesion_detection.md",
        "tables/learning.md",
        "tables/phase_dice.md",
        "figures/fig1_spacing.png",
        "figures/fig2_pipelines.png",
        "figures/fig3_boxes.png",
        "figures/fig4_uncertainty.png",
        "figures/fig5_cases.png",
    ]
    expected += [
        f"figures/fig{n}_{p}.png" for n in ("4_uncertainty", "5_cases", "4_uncertainty_heldout") for p in PIPELINES
    ]
    expected += [f"models/{m}/fold{k}/curves.png" for m in MODELS for k in TINY_FOLDS]
    missing = [path for path in expected if f"results/{path}" not in entries]
    assert not missing, f"not in the report: {missing}"
    for path in expected:
        entry = entries[f"results/{path}"]
        assert entry["caption"].strip() and entry["data_uri"].startswith("data:"), path


@pytest.mark.slow
def test_second_run_has_nothing_to_do(tiny_dag):
    work, _ = tiny_dag
    before = snapshot(work / "results")
    run = run_snakemake(work, "--cores", str(CORES), "--configfile", TINY)
    assert run.returncode == 0, run.tail()
    assert "Nothing to be done" in run.output and not job_stats(run.output), run.tail()
    after = snapshot(work / "results")
    assert {k: v for k, v in after.items() if k != "report.html"} == {
        k: v for k, v in before.items() if k != "report.html"
    }
