from liverseg.workflow.jobs import heldout_table_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    heldout_table_job(snakemake.input, snakemake.output[0].removesuffix(".tsv"))
