# Prediction: every model's cross-validation probabilities, each pipeline's segmentations
# (raw and post-processed) with its lesion table, and the ensemble of every fold's models on
# the held-out images (ensemble/{pipeline}/ensemble/, and each fold's models alone in
# ensemble/{pipeline}/fold{k}/) (paper §2.3-2.6, §2.8).


rule predict:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        folds=f"{RESULTS}/cohort/folds.json",
        models=expand(f"{RESULTS}/models/{{{{model}}}}/fold{{fold}}/model.pt", fold=FOLDS),
    output:
        directory(f"{RESULTS}/predictions/{{model}}"),
    log:
        f"{RESULTS}/logs/predict/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/predict/{{model}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_job"]["threads"]
    resources:
        gpu=1,
        runtime=config["resources"]["gpu_job"]["runtime"],
        mem_mb=config["resources"]["gpu_job"]["mem_mb"],
    params:
        inference=config["inference"],
    script:
        "../scripts/predict.py"


rule segment:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        folds=f"{RESULTS}/cohort/folds.json",
        predictions=get_pipeline_predictions,
    output:
        segmentations=directory(f"{RESULTS}/segmentations/{{pipeline}}"),
        lesions=f"{RESULTS}/lesions/{{pipeline}}.tsv",
    log:
        f"{RESULTS}/logs/segment/{{pipeline}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/segment/{{pipeline}}.tsv"
    conda:
        "../../envs/torch.yaml"
    params:
        predictions=f"{RESULTS}/predictions",
        postprocess=config["postprocess"],
    script:
        "../scripts/segment.py"


rule ensemble:
    input:
        images=HELDOUT["input"],
        models=get_ensemble_models,
    output:
        directory(f"{RESULTS}/ensemble/{{pipeline}}"),
    log:
        f"{RESULTS}/logs/ensemble/{{pipeline}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/ensemble/{{pipeline}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_job"]["threads"]
    resources:
        gpu=1,
        runtime=config["resources"]["gpu_job"]["runtime"],
        mem_mb=config["resources"]["gpu_job"]["mem_mb"],
    params:
        images=HELDOUT["images"],
        postprocess=config["postprocess"],
        inference=config["inference"],
    script:
        "../scripts/ensemble.py"
