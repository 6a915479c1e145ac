# Training: the encoder AHNet starts from (the ImageNet weights or the fold's 2.5D
# pretraining), then one GPU job per fold and model (paper §2.2-2.4, §2.8-2.9).
# `--resources gpu=1` runs one of them at a time.
# Training goes before any prediction: otherwise the scheduler may finish one pipeline while
# another's last model still waits to train, and the chains that follow (predict, ensemble,
# segment, evaluate) run one after another at the end instead of side by side.

TRAINING_PRIORITY = 1


# On a cluster the ImageNet weights are fetched on the login node (compute nodes often have
# no internet), once, before any job that trains.
localrules:
    imagenet_weights,


rule imagenet_weights:
    input:
        get_imagenet_source(),
    output:
        IMAGENET_WEIGHTS,
    log:
        f"{RESULTS}/logs/imagenet_weights.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/imagenet_weights.tsv"
    priority: TRAINING_PRIORITY + 1  # ready at once: a failed download stops the run before any training
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/imagenet_weights.py"


rule pretrain_encoder:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        folds=f"{RESULTS}/cohort/folds.json",
    output:
        f"{RESULTS}/models/encoder/fold{{fold}}/encoder.pt",
    log:
        f"{RESULTS}/logs/pretrain_encoder/fold{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/pretrain_encoder/fold{{fold}}.tsv"
    priority: TRAINING_PRIORITY
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_job"]["threads"]
    resources:
        gpu=1,
        runtime=config["resources"]["gpu_job"]["runtime"],
        mem_mb=config["resources"]["gpu_job"]["mem_mb"],
    params:
        ahnet=config["ahnet"],
        pretrain=config["pretrain"],
        seed=config["seed"],
    script:
        "../scripts/pretrain_encoder.py"


rule train:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        folds=f"{RESULTS}/cohort/folds.json",
        patch_sizes=f"{RESULTS}/analysis/patch_sizes.json",
        encoder=get_encoder,
    output:
        model=f"{RESULTS}/models/{{model}}/fold{{fold}}/model.pt",
        history=f"{RESULTS}/models/{{model}}/fold{{fold}}/history.tsv",
        curves=report(
            f"{RESULTS}/models/{{model}}/fold{{fold}}/curves.png",
            caption="../report/curves.rst",
            category="Training",
            subcategory="{model}",
            labels={"model": "{model}", "fold": "{fold}"},
        ),
    log:
        f"{RESULTS}/logs/train/{{model}}/fold{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/train/{{model}}/fold{{fold}}.tsv"
    priority: TRAINING_PRIORITY
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_job"]["threads"]
    resources:
        gpu=1,
        runtime=config["resources"]["gpu_job"]["runtime"],
        mem_mb=config["resources"]["gpu_job"]["mem_mb"],
    params:
        config=TRAINING_CONFIG,
    script:
        "../scripts/train.py"


rule learning_table:
    input:
        expand(f"{RESULTS}/models/{{model}}/fold{{fold}}/history.tsv", model=MODELS, fold=FOLDS),
    output:
        report(
            multiext(f"{RESULTS}/tables/learning", ".tsv", ".md"),
            caption="../report/learning.rst",
            category="Training",
        ),
    log:
        f"{RESULTS}/logs/learning_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/learning_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        runs=[(model, fold) for model in MODELS for fold in FOLDS],  # the order of expand's input
    script:
        "../scripts/learning_table.py"
