from liverseg.ensemble import predict_images
from liverseg.workflow.scripting import script_context

with script_context(snakemake):
    predict_images(
        snakemake.input.models,
        snakemake.params.images,
        snakemake.output[0],
        single_folds=True,
        postprocess=snakemake.params.postprocess,
        inference=snakemake.params.inference,
    )
