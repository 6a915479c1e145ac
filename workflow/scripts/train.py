from pathlib import Path

from liverseg.workflow.jobs import train_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    train_job(
        snakemake.input.cohort,
        snakemake.input.folds,
        snakemake.input.patch_sizes,
        int(snakemake.wildcards.fold),
        snakemake.wildcards.model,
        Path(snakemake.output.model).parent,
        config=snakemake.params.config,
        encoder_path=snakemake.input.encoder or None,
        threads=snakemake.threads,
    )
