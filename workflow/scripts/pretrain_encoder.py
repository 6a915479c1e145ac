from liverseg.workflow.jobs import pretrain_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    pretrain_job(
        snakemake.input.cohort,
        snakemake.input.folds,
        int(snakemake.wildcards.fold),
        snakemake.output[0],
        threads=snakemake.threads,
        **snakemake.params,
    )
