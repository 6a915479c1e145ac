from liverseg.workflow.jobs import segment_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    segment_job(
        snakemake.wildcards.pipeline,
        snakemake.input.cohort,
        snakemake.input.folds,
        snakemake.params.predictions,
        snakemake.output.segmentations,
        snakemake.output.lesions,
        postprocess=snakemake.params.postprocess,
    )
