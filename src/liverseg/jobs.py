"""The workflow's per-fold jobs: read the stage files, pick the fold's subjects, call
the library. Each function is what one Snakemake job runs (workflow/scripts stay thin).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from .boxes import resolve_patch_size
from .cohort import median_spacing, read_cohort
from .folds import read_folds


def job_seed(seed: int, *parts) -> int:
    """A stable per-job seed: the same for a job whatever else the DAG runs."""
    return (int(seed) + zlib.crc32("/".join(map(str, parts)).encode())) % 2**31


def fold_records(cohort_tsv, folds_json, fold: int) -> dict[str, list[dict]]:
    """The fold's train / validation / test records, in folds.json order."""
    records = {r["subject"]: r for r in read_cohort(cohort_tsv)}
    entry = next(f for f in read_folds(folds_json)["folds"] if int(f["fold"]) == int(fold))
    return {split: [records[s] for s in entry[split]] for split in ("train", "validation", "test")}


def pretrain_job(cohort_tsv, folds_json, fold: int, out_path, *, ahnet: dict, pretrain: dict, seed: int) -> None:
    """2.5D encoder pretraining on the fold's training subjects (AH-Net's recipe)."""
    from .pretrain import pretrain_encoder

    split = fold_records(cohort_tsv, folds_json, fold)
    pretrain_encoder(split["train"], out_path, layers=ahnet["layers"], seed=job_seed(seed, "encoder", fold), **pretrain)


def train_job(cohort_tsv, folds_json, patch_sizes_json, fold: int, model_name: str, out_dir, *, config: dict,
              encoder_path=None, threads: int | None = None) -> None:
    """One training job: model `model_name` on fold `fold`."""
    from .train import train_model

    split = fold_records(cohort_tsv, folds_json, fold)
    model = dict(config["models"][model_name])
    model["patch_size"] = resolve_patch_size(model, json.loads(Path(patch_sizes_json).read_text()))
    train_model(
        split["train"],
        split["validation"],
        model=model,
        ahnet_cfg=config["ahnet"],
        dynunet_cfg=config["dynunet"],
        training=config["training"],
        loss=config["loss"],
        augmentation=config["augmentation"],
        inference=config["inference"],
        out_dir=out_dir,
        seed=job_seed(config["seed"], model_name, fold),
        encoder_path=encoder_path if model["network"] == "ahnet" else None,
        median_spacing=median_spacing(split["train"]),
        threads=threads,
    )
