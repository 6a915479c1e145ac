from liverseg.workflow.jobs import learning_table_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    learning_table_job(
        {tuple(run): path for run, path in zip(snakemake.params.runs, snakemake.input)},
        snakemake.output[0].removesuffix(".tsv"),
    )
