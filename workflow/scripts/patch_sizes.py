from liverseg.boxes import write_patch_sizes
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    write_patch_sizes(
        snakemake.input[0],
        snakemake.output[0],
        snakemake.params.models,
        liver_coverage=snakemake.params.liver_coverage,
        lesion_coverage=snakemake.params.lesion_coverage,
        psp_block_num=snakemake.params.psp_block_num,
    )
