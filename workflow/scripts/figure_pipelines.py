from liverseg.figures import draw_pipelines_figure
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    draw_pipelines_figure(snakemake.input[0], snakemake.output[0], **snakemake.params)
