from liverseg.figures import draw_spacing_figure
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    draw_spacing_figure(snakemake.input[0], snakemake.output[0], **snakemake.params)
