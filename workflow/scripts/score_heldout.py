from pathlib import Path

from liverseg.jobs import heldout_job
from liverseg.scripting import script_context

with script_context(snakemake):
    folders = {"ensemble": snakemake.input.ensemble, **{Path(f).name: f for f in snakemake.input.folds}}
    heldout_job(snakemake.wildcards.pipeline, folders, snakemake.params.labels, snakemake.output[0],
                tolerance_mm=snakemake.params.tolerance_mm)
