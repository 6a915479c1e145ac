from liverseg.folds import write_folds
from liverseg.scripting import script_context

with script_context(snakemake):
    stem = snakemake.output.table[0].removesuffix(".tsv")
    write_folds(snakemake.input[0], snakemake.output.folds, stem, **snakemake.params)
