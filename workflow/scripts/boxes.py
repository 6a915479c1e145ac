from liverseg.boxes import write_boxes
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    write_boxes(snakemake.input[0], snakemake.output[0])
