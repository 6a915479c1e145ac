# Evaluation: the per-subject metrics of every pipeline and stage, Tables 2 and 3, and on the
# held-out images the ensemble's scores and its lesions, TP or FP (paper §2.7, §3, §4).


rule evaluate:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        segmentations=f"{RESULTS}/segmentations/{{pipeline}}",
    output:
        f"{RESULTS}/metrics/{{pipeline}}_{{stage}}.tsv",
    log:
        f"{RESULTS}/logs/evaluate/{{pipeline}}_{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/evaluate/{{pipeline}}_{{stage}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: get_all_cores
    params:
        tolerance_mm=config["evaluation"]["tolerance_mm"],
    script:
        "../scripts/evaluate.py"


rule table2:
    input:
        **{f"{p}/{s}": f"{RESULTS}/metrics/{p}_{s}.tsv" for p, s in TABLE2_COLUMNS},
    output:
        report(
            multiext(f"{RESULTS}/tables/table2_metrics", ".tsv", ".md", ".tex"),
            caption="../report/table2.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/table2.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/table2.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        cohort_name=COHORT_NAME,
    script:
        "../scripts/table2.py"


rule table3:
    input:
        multiclass=f"{RESULTS}/metrics/multiclass_postprocessed.tsv",
        dual_binary=f"{RESULTS}/metrics/dual_binary_postprocessed.tsv",
    output:
        report(
            multiext(f"{RESULTS}/tables/table3_tests", ".tsv", ".md", ".tex"),
            caption="../report/table3.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/table3.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/table3.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        alpha=config["evaluation"]["alpha"],
        cohort_name=COHORT_NAME,
    script:
        "../scripts/table3.py"


rule score_heldout:
    input:
        ensemble=f"{RESULTS}/ensemble/{{pipeline}}",
        labels=HELDOUT["input"],
    output:
        f"{RESULTS}/metrics/heldout_{{pipeline}}.tsv",
    log:
        f"{RESULTS}/logs/score_heldout/{{pipeline}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/score_heldout/{{pipeline}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        labels=HELDOUT["labels"],
        tolerance_mm=config["evaluation"]["tolerance_mm"],
    script:
        "../scripts/score_heldout.py"


rule heldout_table:
    input:
        expand(f"{RESULTS}/metrics/heldout_{{pipeline}}.tsv", pipeline=PIPELINE_NAMES),
    output:
        report(
            multiext(f"{RESULTS}/tables/heldout_scores", ".tsv", ".md"),
            caption="../report/heldout.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/heldout_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/heldout_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        cohort_name=COHORT_NAME,
    script:
        "../scripts/heldout_table.py"


rule phase_table:
    input:
        **get_phase_table_metrics(),
        cohort=f"{RESULTS}/cohort/cohort.tsv",
    output:
        report(
            multiext(f"{RESULTS}/tables/phase_dice", ".tsv", ".md"),
            caption="../report/phase_dice.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/phase_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/phase_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        heldout_info=HELDOUT_PHASES,
        cohort_name=COHORT_NAME,
    script:
        "../scripts/phase_table.py"


rule heldout_lesions:
    """The ensemble's held-out lesions, TP or FP against the held-out labels, and the
    labels' lesions, detected or not: scored here, after the ensemble rule, which (the
    challenge submission) never sees labels."""
    input:
        ensemble=f"{RESULTS}/ensemble/{{pipeline}}",
        labels=HELDOUT["input"],
    output:
        lesions=f"{RESULTS}/lesions/heldout_{{pipeline}}.tsv",
        truth=f"{RESULTS}/lesions/heldout_truth_{{pipeline}}.tsv",
    log:
        f"{RESULTS}/logs/heldout_lesions/{{pipeline}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/heldout_lesions/{{pipeline}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        labels=HELDOUT["labels"],
    script:
        "../scripts/heldout_lesions.py"
