"""The glue that serves the Snakemake workflow, apart from the science modules: what each
job runs (`jobs`), the scripts' logging and error context (`scripting`), and what a run
cost per rule (`run_costs`). The science modules never import it."""
