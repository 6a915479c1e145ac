# Shared helpers: paths, fold numbers, the semantic config check.
import sys

from liverseg.config import check_config
from liverseg.errors import InputError

try:
    check_config(config)
except InputError as exc:  # one clear line, not a traceback
    sys.exit(f"liverseg: config error: {exc}")

RESULTS = "results"
FOLDS = list(range(1, config["folds"]["n_folds"] + 1))
MODELS = list(config["models"])
SYNTHETIC = config["dataset"]["source"] == "synthetic"
COHORT_NAME = "synthetic" if SYNTHETIC else "ATLAS"
# What a training job depends on: a change here retrains (Snakemake's params trigger).
TRAINING_CONFIG = {
    key: config[key]
    for key in ("seed", "models", "ahnet", "dynunet", "training", "loss", "augmentation", "inference")
}


wildcard_constraints:
    model="|".join(MODELS),
    fold=r"\d+",


def dataset_root():
    """The folder in the ATLAS layout that the cohort rule reads."""
    return f"{RESULTS}/synthetic/train" if SYNTHETIC else config["dataset"]["root"]


def final_outputs():
    return [
        f"{RESULTS}/tables/table1_folds.tsv",
        f"{RESULTS}/tables/table1_folds.md",
        f"{RESULTS}/figures/fig1_spacing.png",
        f"{RESULTS}/figures/fig3_boxes.png",
        f"{RESULTS}/analysis/patch_sizes.json",
    ] + expand(f"{RESULTS}/models/{{model}}/fold{{fold}}/model.pt", model=MODELS, fold=FOLDS)
