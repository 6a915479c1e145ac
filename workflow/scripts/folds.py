from liverseg.folds import write_folds
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    write_folds(
        snakemake.input[0],
        snakemake.output.folds,
        snakemake.output.table[0].removesuffix(".tsv"),
        seed=snakemake.params.seed,
        n_folds=snakemake.params.n_folds,
        validation_fraction=snakemake.params.validation_fraction,
        scheme=snakemake.params.scheme,
    )
