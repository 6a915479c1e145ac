from liverseg.workflow.jobs import phase_table_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    metrics = {key: path for key, path in snakemake.input.items() if key != "cohort"}
    phase_table_job(
        metrics, snakemake.input.cohort, snakemake.output[0].removesuffix(".tsv"), snakemake.params.heldout_info
    )
