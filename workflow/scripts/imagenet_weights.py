from liverseg.imagenet import fetch_weights
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    fetch_weights(snakemake.output[0], source=snakemake.input[0] if snakemake.input else None)
