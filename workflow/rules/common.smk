# What every .smk shares: values derived from the config, the wildcard constraints and the
# input functions (get_*). The config is checked in the Snakefile.
from pathlib import Path

from liverseg.imagenet import CACHE as IMAGENET_WEIGHTS
from liverseg.pipelines import FIGURE2_PIPELINES, PIPELINES, STAGES, pipelines_for

RESULTS = config["results"]
FOLDS = list(range(1, config["folds"]["n_folds"] + 1))
MODELS = list(config["models"])
SYNTHETIC = config["dataset"]["source"] == "synthetic"
COHORT_NAME = "synthetic" if SYNTHETIC else "ATLAS"
# What a training job depends on: a change here retrains (Snakemake's params trigger).
TRAINING_CONFIG = {
    key: config[key] for key in ("seed", "models", "ahnet", "dynunet", "training", "loss", "augmentation", "inference")
}
# Where the ImageNet weights came from changes no model: their checksum fixes them.
TRAINING_CONFIG["ahnet"] = {k: v for k, v in config["ahnet"].items() if k != "imagenet_weights"}
ENCODER = config["ahnet"]["encoder"]

PIPELINE_NAMES = pipelines_for(MODELS)
# Table 2's columns in the paper's order: the ablation (DynUNet) post-processed only.
TABLE2_COLUMNS = [(p, s) for p in PIPELINE_NAMES for s in STAGES[::-1] if not (p == "dynunet" and s == "raw")]


def heldout_images():
    """Images outside the cross-validation: the synthetic held-out set, or
    dataset.test_images; their labels where known (to score the ensemble)."""
    if SYNTHETIC:
        if not config["dataset"]["synthetic"]["heldout"]:
            return None
        base = f"{RESULTS}/synthetic"
        return {
            "input": base,
            "images": f"{base}/test/imagesTs",
            "labels": f"{base}/test_labels",
            "info": f"{base}/test/patient_info_test.json",
        }
    if config["dataset"]["test_images"]:
        images = config["dataset"]["test_images"]
        return {"input": images, "images": images, "labels": config["dataset"]["test_labels"], "info": None}
    return None


# "info": the held-out images' patient_info JSON (their contrast phases), where known
HELDOUT = heldout_images() or {"input": [], "images": None, "labels": None, "info": None}
# The held-out phases that score anything: where the held-out images also have labels
HELDOUT_PHASES = HELDOUT["info"] if HELDOUT["labels"] else None


def get_encoder(wildcards):
    """The encoder an AHNet model starts from (ahnet.encoder): the ImageNet weights or the
    fold's 2.5D-pretrained encoder; none for "none". The weights are ancient: their
    checksum fixes their content, so a fresh copy of the file retrains nothing."""
    if config["models"][wildcards.model]["network"] != "ahnet" or ENCODER == "none":
        return []
    if ENCODER == "imagenet":
        return ancient(IMAGENET_WEIGHTS)
    return f"{RESULTS}/models/encoder/fold{wildcards.fold}/encoder.pt"


def get_imagenet_source():
    """An existing copy of the ImageNet weights (ahnet.imagenet_weights), else nothing:
    the rule downloads them."""
    source = config["ahnet"]["imagenet_weights"]
    if source is None or Path(source).resolve() == Path(IMAGENET_WEIGHTS).resolve():
        return []
    return source


def get_ensemble_models(wildcards):
    """The pipeline's models of every fold: the ensemble."""
    return expand(
        f"{RESULTS}/models/{{model}}/fold{{fold}}/model.pt",
        model=PIPELINES[wildcards.pipeline].values(),
        fold=FOLDS,
    )


def get_pipeline_predictions(wildcards):
    """The cross-validation predictions of the pipeline's models (two for dual binary)."""
    return expand(f"{RESULTS}/predictions/{{model}}", model=PIPELINES[wildcards.pipeline].values())


def get_all_cores(wildcards):
    """Every core of the run, read per job: --report and --lint need no --cores."""
    return workflow.cores


wildcard_constraints:
    pipeline="|".join(PIPELINES),
    stage="|".join(STAGES),
    model="|".join(MODELS),
    fold="|".join(map(str, FOLDS)),  # fold0 or fold6 of 5 folds is no job


def get_cohort_source():
    """The input of the cohort stage (the synthetic cohort's folder, or the ATLAS download)."""
    return f"{RESULTS}/synthetic" if SYNTHETIC else config["dataset"]["root"]


def get_dataset_root():
    """The folder in the ATLAS layout that the cohort rule reads."""
    return f"{RESULTS}/synthetic/train" if SYNTHETIC else config["dataset"]["root"]


def get_heldout_lesion_tables():
    """The ensemble's held-out lesion tables, where held-out labels can score them."""
    if not HELDOUT["labels"]:
        return []
    return expand(f"{RESULTS}/lesions/heldout_{{pipeline}}.tsv", pipeline=PIPELINE_NAMES)


def get_phase_table_metrics():
    """The metrics that the Dice-by-phase table reads, keyed "set/pipeline": every
    pipeline's post-processed cross-validation, and its held-out ensemble where the
    held-out images have labels and known phases."""
    metrics = {f"cross-validation/{p}": f"{RESULTS}/metrics/{p}_postprocessed.tsv" for p in PIPELINE_NAMES}
    if HELDOUT_PHASES:
        metrics.update({f"held-out/{p}": f"{RESULTS}/metrics/heldout_{p}.tsv" for p in PIPELINE_NAMES})
    return metrics


def get_final_outputs():
    """Every table and figure of the paper, the training curves and the learning table."""
    outputs = [
        f"{RESULTS}/tables/table1_folds.md",
        f"{RESULTS}/figures/fig1_spacing.png",
        f"{RESULTS}/figures/fig3_boxes.png",
        f"{RESULTS}/analysis/patch_sizes.json",
    ]
    outputs += expand(f"{RESULTS}/models/{{model}}/fold{{fold}}/curves.png", model=MODELS, fold=FOLDS)
    outputs.append(f"{RESULTS}/tables/learning.md")
    if set(PIPELINE_NAMES) & set(FIGURE2_PIPELINES):
        outputs.append(f"{RESULTS}/figures/fig2_pipelines.png")
    if PIPELINE_NAMES:
        outputs += [
            f"{RESULTS}/tables/table2_metrics.md",
            f"{RESULTS}/tables/lesion_uncertainty.md",
            f"{RESULTS}/tables/phase_dice.md",
        ]
        outputs += expand(
            f"{RESULTS}/figures/fig{{n}}_{{pipeline}}.png", n=["4_uncertainty", "5_cases"], pipeline=PIPELINE_NAMES
        )
    if {"multiclass", "dual_binary"} <= set(PIPELINE_NAMES):
        outputs.append(f"{RESULTS}/tables/table3_tests.md")
    if "multiclass" in PIPELINE_NAMES:
        outputs += [f"{RESULTS}/figures/fig4_uncertainty.png", f"{RESULTS}/figures/fig5_cases.png"]
    if HELDOUT["images"] and PIPELINE_NAMES:
        outputs += expand(f"{RESULTS}/ensemble/{{pipeline}}", pipeline=PIPELINE_NAMES)
    if HELDOUT["labels"] and PIPELINE_NAMES:
        outputs += [f"{RESULTS}/tables/heldout_scores.md", f"{RESULTS}/tables/lesion_detection.md"]
        outputs += expand(f"{RESULTS}/figures/fig4_uncertainty_heldout_{{pipeline}}.png", pipeline=PIPELINE_NAMES)
    return outputs
