# The cohort: the synthetic phantoms (dataset.source: synthetic) or the ATLAS download read
# into cohort/cohort.tsv, the cross-validation folds and Table 1 (paper §2.1).


rule synthesize:
    output:
        directory(f"{RESULTS}/synthetic"),
    log:
        f"{RESULTS}/logs/synthesize.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/synthesize.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        subjects=config["dataset"]["synthetic"]["subjects"],
        heldout=config["dataset"]["synthetic"]["heldout"],
        seed=config["dataset"]["synthetic"]["seed"],
        scale=config["dataset"]["synthetic"]["scale"],
    script:
        "../scripts/synthesize.py"


rule cohort:
    input:
        get_cohort_source(),
    output:
        f"{RESULTS}/cohort/cohort.tsv",
    log:
        f"{RESULTS}/logs/cohort.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/cohort.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        root=get_dataset_root(),
    script:
        "../scripts/cohort.py"


rule folds:
    input:
        f"{RESULTS}/cohort/cohort.tsv",
    output:
        folds=f"{RESULTS}/cohort/folds.json",
        table=report(
            multiext(f"{RESULTS}/tables/table1_folds", ".tsv", ".md"),
            caption="../report/table1.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/folds.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/folds.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        seed=config["seed"],
        n_folds=config["folds"]["n_folds"],
        scheme=config["folds"]["scheme"],
        validation_fraction=config["folds"]["validation_fraction"],
        cohort_name=COHORT_NAME,
    script:
        "../scripts/folds.py"
