from liverseg.workflow.jobs import lesion_auroc_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    pipelines = snakemake.params.pipelines
    lesion_auroc_job(
        dict(zip(pipelines, snakemake.input.cv)),
        snakemake.output[0].removesuffix(".tsv"),
        heldout_tsvs=dict(zip(pipelines, snakemake.input.heldout)),
    )
