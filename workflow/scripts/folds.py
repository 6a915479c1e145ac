from liverseg.folds import write_folds
from liverseg.scripting import script_context

with script_context(snakemake):
    stem = snakemake.output.table[0].removesuffix(".tsv")
    params = {k: v for k, v in snakemake.params.items() if k != "cohort_name"}
    write_folds(snakemake.input[0], snakemake.output.folds, stem, **params)
