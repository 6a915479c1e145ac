# Figures of the pipelines and their lesions: Figure 2 (the pipelines as configured),
# Figures 4 and 5 per pipeline (the paper's: multi-class), the table of the uncertainty's
# AUROC, and Figure 4 of the held-out ensemble where labels exist (paper §2.2-2.6, §3).


rule figure_pipelines:
    """Figure 2 from the workflow itself: the configured models, their patch sizes, the
    post-processing settings, and the names of the rules that run each step."""
    input:
        f"{RESULTS}/analysis/patch_sizes.json",
    output:
        report(
            f"{RESULTS}/figures/fig2_pipelines.png",
            caption="../report/fig2_pipelines.rst",
            category="Pipelines",
        ),
    log:
        f"{RESULTS}/logs/figure_pipelines.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/figure_pipelines.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        models=config["models"],
        encoder=config["ahnet"]["encoder"],
        postprocess=config["postprocess"],
        rules={"train": rules.train.rule.name, "predict": rules.predict.rule.name, "segment": rules.segment.rule.name},
    script:
        "../scripts/figure_pipelines.py"


rule figure_lesions:
    input:
        lesions=f"{RESULTS}/lesions/{{pipeline}}.tsv",
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        segmentations=f"{RESULTS}/segmentations/{{pipeline}}",
    output:
        fig4=report(
            f"{RESULTS}/figures/fig4_uncertainty_{{pipeline}}.png",
            caption="../report/fig4_uncertainty.rst",
            category="Lesion uncertainty",
        ),
        fig5=report(
            f"{RESULTS}/figures/fig5_cases_{{pipeline}}.png",
            caption="../report/fig5_cases.rst",
            category="Lesion uncertainty",
        ),
    log:
        f"{RESULTS}/logs/figure_lesions/{{pipeline}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/figure_lesions/{{pipeline}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        cohort_name=COHORT_NAME,
    script:
        "../scripts/figure_lesions.py"


rule paper_figure:
    """The paper's Figures 4 and 5 show the multi-class pipeline."""
    input:
        f"{RESULTS}/figures/{{figure}}_multiclass.png",
    output:
        report(
            f"{RESULTS}/figures/{{figure}}.png",
            caption="../report/paper_figure.rst",
            category="Lesion uncertainty",
        ),
    log:
        f"{RESULTS}/logs/paper_figure/{{figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/paper_figure/{{figure}}.tsv"
    wildcard_constraints:
        figure="fig4_uncertainty|fig5_cases",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "cp {input} {output} 2> {log}"


rule figure_heldout_lesions:
    """Figure 4 of the five-fold ensemble on the held-out images (where labels exist)."""
    input:
        f"{RESULTS}/lesions/heldout_{{pipeline}}.tsv",
    output:
        report(
            f"{RESULTS}/figures/fig4_uncertainty_heldout_{{pipeline}}.png",
            caption="../report/fig4_uncertainty_heldout.rst",
            category="Lesion uncertainty",
        ),
    log:
        f"{RESULTS}/logs/figure_heldout_lesions/{{pipeline}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/figure_heldout_lesions/{{pipeline}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        cohort_name=COHORT_NAME,
    script:
        "../scripts/figure_heldout_lesions.py"


rule lesion_detection:
    input:
        expand(f"{RESULTS}/lesions/heldout_truth_{{pipeline}}.tsv", pipeline=PIPELINE_NAMES),
    output:
        report(
            multiext(f"{RESULTS}/tables/lesion_detection", ".tsv", ".md"),
            caption="../report/lesion_detection.rst",
            category="Lesion uncertainty",
        ),
    log:
        f"{RESULTS}/logs/lesion_detection.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/lesion_detection.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        pipelines=PIPELINE_NAMES,
    script:
        "../scripts/lesion_detection.py"


rule lesion_auroc:
    input:
        cv=expand(f"{RESULTS}/lesions/{{pipeline}}.tsv", pipeline=PIPELINE_NAMES),
        # the ensemble's held-out lesions too, where they can be scored
        heldout=get_heldout_lesion_tables(),
    output:
        report(
            multiext(f"{RESULTS}/tables/lesion_uncertainty", ".tsv", ".md"),
            caption="../report/lesion_auroc.rst",
            category="Lesion uncertainty",
        ),
    log:
        f"{RESULTS}/logs/lesion_auroc.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/lesion_auroc.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        pipelines=PIPELINE_NAMES,
    script:
        "../scripts/lesion_auroc.py"
