from liverseg.workflow.jobs import table3_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    table3_job(
        snakemake.input.multiclass,
        snakemake.input.dual_binary,
        snakemake.output[0].removesuffix(".tsv"),
        alpha=snakemake.params.alpha,
    )
