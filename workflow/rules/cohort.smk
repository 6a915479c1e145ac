# Stage 1-2: the cohort (ATLAS download or synthetic phantoms), the folds, Table 1.


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
        **config["dataset"]["synthetic"],
    script:
        "../scripts/synthesize.py"


rule cohort:
    input:
        f"{RESULTS}/synthetic" if SYNTHETIC else config["dataset"]["root"],
    output:
        f"{RESULTS}/cohort/cohort.tsv",
    log:
        f"{RESULTS}/logs/cohort.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/cohort.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        root=dataset_root(),
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
        **config["folds"],
        seed=config["seed"],
        cohort_name=COHORT_NAME,
    script:
        "../scripts/folds.py"
