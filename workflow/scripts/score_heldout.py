from pathlib import Path

from liverseg.workflow.jobs import heldout_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    # ensemble/ and one fold{k}/ per fold's models alone
    folders = {f.name: f for f in sorted(Path(snakemake.input.ensemble).iterdir()) if f.is_dir()}
    heldout_job(
        snakemake.wildcards.pipeline,
        folders,
        snakemake.params.labels,
        snakemake.output[0],
        tolerance_mm=snakemake.params.tolerance_mm,
    )
