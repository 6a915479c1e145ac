# liverseg: the paper "Anisotropic Hybrid Networks for liver tumor segmentation with
# uncertainty quantification" (MICCAI 2023 ATLAS challenge) as one DAG.
# All logic lives in the liverseg package (src/liverseg); rules only wire files.

import sys

from snakemake.utils import min_version

from liverseg.config import check_config
from liverseg.errors import ConfigError

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# The schema (its defaults filled in), then what it cannot express (AHNet's size rules):
# a bad config stops here with one line naming the key, not a schema dump or a traceback.
try:
    check_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
except ConfigError as exc:
    sys.exit(f"liverseg: config error: {exc}")


include: "workflow/rules/common.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
