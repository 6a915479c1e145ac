# The cohort's analysis: liver and lesion bounding boxes, the AHNet patch sizes that enclose
# them, Figures 1 and 3 (paper §2.1, §2.3).


rule boxes:
    input:
        f"{RESULTS}/cohort/cohort.tsv",
    output:
        f"{RESULTS}/analysis/boxes.tsv",
    log:
        f"{RESULTS}/logs/boxes.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/boxes.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/boxes.py"


rule patch_sizes:
    input:
        f"{RESULTS}/analysis/boxes.tsv",
    output:
        f"{RESULTS}/analysis/patch_sizes.json",
    log:
        f"{RESULTS}/logs/patch_sizes.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/patch_sizes.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        models=config["models"],
        liver_coverage=config["analysis"]["liver_coverage"],
        lesion_coverage=config["analysis"]["lesion_coverage"],
        psp_block_num=config["ahnet"]["psp_block_num"],
    script:
        "../scripts/patch_sizes.py"


rule figure_spacing:
    input:
        f"{RESULTS}/cohort/cohort.tsv",
    output:
        report(
            f"{RESULTS}/figures/fig1_spacing.png",
            caption="../report/fig1_spacing.rst",
            category="Cohort",
        ),
    log:
        f"{RESULTS}/logs/figure_spacing.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/figure_spacing.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        cohort_name=COHORT_NAME,
        seed=config["seed"],
    script:
        "../scripts/figure_spacing.py"


rule figure_boxes:
    input:
        boxes=f"{RESULTS}/analysis/boxes.tsv",
        patch_sizes=f"{RESULTS}/analysis/patch_sizes.json",
    output:
        report(
            f"{RESULTS}/figures/fig3_boxes.png",
            caption="../report/fig3_boxes.rst",
            category="Cohort",
        ),
    log:
        f"{RESULTS}/logs/figure_boxes.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/figure_boxes.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        cohort_name=COHORT_NAME,
    script:
        "../scripts/figure_boxes.py"
