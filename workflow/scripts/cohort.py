from liverseg.cohort import write_cohort
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    write_cohort(snakemake.params.root, snakemake.output[0])
