# Stages 5-6 and 9: cross-validation predictions, the pipelines' segmentations (raw and
# post-processed) with their lesion tables, and the five-fold ensemble on held-out images.


rule predict:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        folds=f"{RESULTS}/cohort/folds.json",
        model=f"{RESULTS}/models/{{model}}/fold{{fold}}/model.pt",
    output:
        directory(f"{RESULTS}/predictions/{{model}}/fold{{fold}}"),
    params:
        inference=config["inference"],
    threads: config["resources"]["gpu_job"]["threads"]
    resources:
        gpu=1,
        runtime=config["resources"]["gpu_job"]["runtime"],
        mem_mb=config["resources"]["gpu_job"]["mem_mb"],
    log:
        f"{RESULTS}/logs/predict/{{model}}/fold{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/predict/{{model}}/fold{{fold}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/predict.py"


rule segment:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        folds=f"{RESULTS}/cohort/folds.json",
        predictions=lambda wc: expand(
            f"{RESULTS}/predictions/{{model}}/fold{{fold}}",
            model=PIPELINES[wc.pipeline].values(),
            fold=FOLDS,
        ),
    output:
        segmentations=directory(f"{RESULTS}/segmentations/{{pipeline}}"),
        lesions=f"{RESULTS}/lesions/{{pipeline}}.tsv",
    params:
        predictions=f"{RESULTS}/predictions",
        postprocess=config["postprocess"],
    log:
        f"{RESULTS}/logs/segment/{{pipeline}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/segment/{{pipeline}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/segment.py"


rule ensemble:
    input:
        images=HELDOUT["input"],
        models=lambda wc: ensemble_models(wc.pipeline, FOLDS),
    output:
        directory(f"{RESULTS}/ensemble/{{pipeline}}/ensemble"),
    params:
        images=HELDOUT["images"],
        postprocess=config["postprocess"],
        inference=config["inference"],
    threads: config["resources"]["gpu_job"]["threads"]
    resources:
        gpu=1,
        runtime=config["resources"]["gpu_job"]["runtime"],
        mem_mb=config["resources"]["gpu_job"]["mem_mb"],
    log:
        f"{RESULTS}/logs/ensemble/{{pipeline}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/ensemble/{{pipeline}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/ensemble.py"


use rule ensemble as ensemble_single_fold with:
    input:
        images=HELDOUT["input"],
        models=lambda wc: ensemble_models(wc.pipeline, [int(wc.fold)]),
    output:
        directory(f"{RESULTS}/ensemble/{{pipeline}}/fold{{fold}}"),
    log:
        f"{RESULTS}/logs/ensemble/{{pipeline}}_fold{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/ensemble/{{pipeline}}_fold{{fold}}.tsv"
