from liverseg.cohort import write_cohort
from liverseg.scripting import script_context

with script_context(snakemake):
    write_cohort(snakemake.input[0], snakemake.output[0])
