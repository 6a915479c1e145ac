from liverseg.jobs import predict_job
from liverseg.scripting import script_context

with script_context(snakemake):
    predict_job(snakemake.input.cohort, snakemake.input.folds, int(snakemake.wildcards.fold), snakemake.input.model,
                snakemake.output[0], **snakemake.params)
