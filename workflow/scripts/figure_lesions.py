from liverseg.figures import draw_lesion_figures
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    draw_lesion_figures(
        snakemake.input.lesions,
        snakemake.input.cohort,
        snakemake.input.segmentations,
        snakemake.output.fig4,
        snakemake.output.fig5,
        pipeline=snakemake.wildcards.pipeline,
        **snakemake.params,
    )
