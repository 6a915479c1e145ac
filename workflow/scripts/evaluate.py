from liverseg.workflow.jobs import evaluate_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    evaluate_job(
        snakemake.input.cohort,
        snakemake.input.segmentations,
        snakemake.wildcards.stage,
        snakemake.output[0],
        tolerance_mm=snakemake.params.tolerance_mm,
        jobs=snakemake.threads,
    )
