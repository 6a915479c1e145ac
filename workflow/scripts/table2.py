from liverseg.workflow.jobs import table2_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    table2_job(dict(snakemake.input.items()), snakemake.output[0].removesuffix(".tsv"))
