from pathlib import Path

from liverseg.workflow.jobs import predict_job
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    models = {int(Path(path).parent.name.removeprefix("fold")): path for path in snakemake.input.models}
    predict_job(
        snakemake.input.cohort,
        snakemake.input.folds,
        models,
        snakemake.output[0],
        threads=snakemake.threads,
        **snakemake.params,
    )
