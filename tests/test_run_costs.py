"""The per-rule cost table built from Snakemake's benchmark files (`liverseg costs`)."""

from __future__ import annotations

import pandas as pd
import pytest

from liverseg.cli import main
from liverseg.errors import InputError
from liverseg.workflow.run_costs import read_benchmarks, rule_costs, training_table, write_rule_costs

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(root, name: str, *rows: str) -> None:
    """A benchmark file as Snakemake writes it: its header, one line per run."""
    path = root / "benchmarks" / "rules" / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(row + "\n" for row in rows))


@pytest.fixture
def results(tmp_path):
    bench(tmp_path, "cohort", "1.73\t0:00:01\t88.28\t198.05\t56.85\t72.20\t0.00\t0.00\t57.99\t1.50")
    bench(tmp_path, "folds", "0.40\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA")  # ended before the first sample
    bench(
        tmp_path,
        "train/ahnet_liver/fold1",
        "100.00\t0:01:40\t900.50\t2000.00\t800.00\t850.00\t5.00\t1.00\t95.00\t180.00",
    )
    bench(
        tmp_path,
        "train/ahnet_liver/fold2",
        "60.00\t0:01:00\t1200.25\t2100.00\t900.00\t950.00\t5.00\t1.00\t90.00\t110.00",
    )
    bench(
        tmp_path,
        "evaluate/multiclass_raw",  # a job benchmarked twice (Snakemake's repeat)
        "10.00\t0:00:10\t300.00\t500.00\t200.00\t250.00\t1.00\t0.10\t80.00\t8.00",
        "14.00\t0:00:14\t340.00\t500.00\t200.00\t250.00\t1.00\t0.10\t80.00\t12.00",
    )
    return tmp_path


def test_one_row_per_job_with_its_rule(results):
    jobs = read_benchmarks(results).set_index("job")
    assert sorted(jobs.index) == [
        "cohort",
        "evaluate/multiclass_raw",
        "folds",
        "train/ahnet_liver/fold1",
        "train/ahnet_liver/fold2",
    ]
    assert jobs.rule.to_dict()["train/ahnet_liver/fold2"] == "train"
    assert jobs.loc["evaluate/multiclass_raw", ["wall_s", "cpu_s", "max_rss_mib"]].tolist() == [
        12.0,
        10.0,
        340.0,
    ]
    assert jobs.loc["folds", "wall_s"] == 0.4 and pd.isna(jobs.loc["folds", "max_rss_mib"])


def test_rules_are_summed_and_sorted_with_a_total(results):
    table = rule_costs(read_benchmarks(results)).set_index("rule")
    assert list(table.index) == ["train", "evaluate", "cohort", "folds", "total"]
    assert table.loc["train", ["jobs", "wall_s", "cpu_s", "peak_rss_mib"]].tolist() == [
        2,
        160.0,
        290.0,
        1200.2,
    ]
    assert table.loc["total", ["jobs", "wall_s", "cpu_s", "peak_rss_mib"]].tolist() == [
        5,
        174.13,
        301.5,
        1200.2,
    ]
    assert table.loc["train", "wall_share"] == round(160 / 174.13, 3) and table.loc["total", "wall_share"] == 1.0
    assert pd.isna(table.loc["folds", "peak_rss_mib"]) and table.loc["folds", "cpu_s"] == 0


def test_cli_writes_tsv_and_markdown(results, capsys):
    assert main(["costs", str(results)]) == 0
    written = pd.read_csv(results / "benchmarks" / "rule_costs.tsv", sep="\t")
    assert written.rule.tolist()[-1] == "total" and written.jobs.sum() == 10
    markdown = (results / "benchmarks" / "rule_costs.md").read_text()
    assert "| train | 2 | 160.0 |" in markdown
    assert "| train |" in capsys.readouterr().out
    write_rule_costs(results, results / "elsewhere")
    assert (results / "elsewhere.md").is_file()


def test_missing_or_foreign_files_are_reported(tmp_path, results, capsys):
    assert main(["costs", str(tmp_path / "nothing")]) == 1
    assert "no benchmark files" in capsys.readouterr().err
    (results / "benchmarks" / "rules" / "odd.tsv").write_text("name\tvalue\nx\t1\n")
    with pytest.raises(InputError, match="odd.tsv: not a Snakemake benchmark file"):
        read_benchmarks(results)


def history(root, model: str, fold: int, text: str) -> None:
    path = root / "models" / model / f"fold{fold}" / "history.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_training_table_sums_the_wait_per_model(results, capsys):
    columns = "epoch\ttrain_loss\tseconds\tdata_seconds\tstep_seconds\n"
    history(results, "ahnet_liver", 1, columns + "1\t0.9\t50\t4\t36\n2\t0.8\t50\t6\t34\n")
    history(results, "ahnet_liver", 2, columns + "1\t0.9\t50\t10\t30\n")
    history(results, "dynunet_multiclass", 1, columns + "1\t0.7\t20\t1\t9\n")
    table = training_table(results).set_index("model")
    assert list(table.index) == ["ahnet_liver", "dynunet_multiclass", "total"]
    assert table.loc["ahnet_liver", ["folds", "epochs", "data_s", "step_s"]].tolist() == [
        2,
        3,
        20.0,
        100.0,
    ]
    assert table.loc["ahnet_liver", "wait_share"] == round(20 / 120, 3)
    assert table.loc["total", ["folds", "epochs", "data_s", "step_s"]].tolist() == [
        3,
        4,
        21.0,
        109.0,
    ]
    assert table.loc["total", "wait_share"] == round(21 / 130, 3)
    assert main(["costs", str(results)]) == 0
    assert "| ahnet_liver | 2 | 3 | 20 | 100 | 0.167 |" in capsys.readouterr().out
    assert (results / "benchmarks" / "training.md").is_file()


def test_training_table_of_older_histories_and_foreign_files(results, tmp_path):
    assert training_table(tmp_path / "nothing").empty  # nothing trained: no table, no error
    history(results, "ahnet_tumor", 1, "epoch\ttrain_loss\tseconds\n1\t0.9\t50\n")  # before the columns
    table = training_table(results).set_index("model")
    assert table.loc["ahnet_tumor", "epochs"] == 1 and pd.isna(table.loc["ahnet_tumor", "wait_share"])
    history(results, "ahnet_tumor", 2, "name\tvalue\nx\t1\n")
    with pytest.raises(InputError, match="fold2/history.tsv: not a training history"):
        training_table(results)
