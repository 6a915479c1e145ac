from liverseg.scripting import script_context
from liverseg.synthetic import write_synthetic_cohort

with script_context(snakemake):
    write_synthetic_cohort(snakemake.output[0], **snakemake.params)
