# liverseg: the paper "Anisotropic Hybrid Networks for liver tumor segmentation with
# uncertainty quantification" (MICCAI 2023 ATLAS challenge) as one DAG.
# All logic lives in the liverseg package (src/liverseg); rules only wire files.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
