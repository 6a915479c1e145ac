from liverseg.workflow.jobs import lesion_detection_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    lesion_detection_job(
        dict(zip(snakemake.params.pipelines, snakemake.input)),
        snakemake.output[0].removesuffix(".tsv"),
    )
