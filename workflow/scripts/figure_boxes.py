from liverseg.figures import draw_boxes_figure
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    draw_boxes_figure(snakemake.input.boxes, snakemake.input.patch_sizes, snakemake.output[0], **snakemake.params)
