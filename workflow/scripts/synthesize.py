from liverseg.synthetic import write_synthetic_cohort
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    write_synthetic_cohort(
        snakemake.output[0],
        subjects=snakemake.params.subjects,
        heldout=snakemake.params.heldout,
        seed=snakemake.params.seed,
        scale=snakemake.params.scale,
    )
