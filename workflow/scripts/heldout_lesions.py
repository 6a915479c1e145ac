from pathlib import Path

from liverseg.workflow.jobs import heldout_lesions_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    # the five-fold ensemble's folder (ensemble/{pipeline}/ensemble/), not the single folds'
    heldout_lesions_job(
        Path(snakemake.input.ensemble) / "ensemble",
        snakemake.params.labels,
        snakemake.output.lesions,
        snakemake.output.truth,
    )
