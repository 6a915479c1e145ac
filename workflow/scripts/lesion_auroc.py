from liverseg.jobs import lesion_auroc_job
from liverseg.scripting import script_context

with script_context(snakemake):
    lesion_auroc_job(dict(snakemake.input.items()), snakemake.output[0].removesuffix(".tsv"))
