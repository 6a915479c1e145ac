from liverseg.figures import draw_heldout_uncertainty_figure
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    draw_heldout_uncertainty_figure(
        snakemake.input[0],
        snakemake.output[0],
        pipeline=snakemake.wildcards.pipeline,
        **snakemake.params,
    )
