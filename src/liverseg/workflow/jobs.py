"""The workflow's per-fold jobs: read the stage files, pick the fold's subjects, call
the library. Each function is what one Snakemake job runs (workflow/scripts stay thin).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from ..boxes import resolve_patch_size
from ..cohort import median_spacing, read_cohort
from ..errors import InputError
from ..folds import read_folds


def job_seed(seed: int, *parts) -> int:
    """A stable per-job seed: the same for a job whatever else the DAG runs."""
    return (int(seed) + zlib.crc32("/".join(map(str, parts)).encode())) % 2**31


def fold_records(cohort_tsv, folds_json, fold: int) -> dict[str, list[dict]]:
    """The fold's train / validation / test records, in folds.json order."""
    records = {r["subject"]: r for r in read_cohort(cohort_tsv)}
    entry = next(f for f in read_folds(folds_json)["folds"] if int(f["fold"]) == int(fold))
    return {split: [records[s] for s in entry[split]] for split in ("train", "validation", "test")}


def pretrain_job(
    cohort_tsv,
    folds_json,
    fold: int,
    out_path,
    *,
    ahnet: dict,
    pretrain: dict,
    seed: int,
    threads: int | None = None,
) -> None:
    """2.5D encoder pretraining on the fold's training subjects (AH-Net's recipe)."""
    from ..pretrain import pretrain_encoder

    split = fold_records(cohort_tsv, folds_json, fold)
    pretrain_encoder(
        split["train"],
        out_path,
        layers=ahnet["layers"],
        seed=job_seed(seed, "encoder", fold),
        threads=threads,
        **pretrain,
    )


def train_job(
    cohort_tsv,
    folds_json,
    patch_sizes_json,
    fold: int,
    model_name: str,
    out_dir,
    *,
    config: dict,
    encoder_path=None,
    threads: int | None = None,
) -> None:
    """One training job: model `model_name` on fold `fold`."""
    from ..nets import check_patch_size
    from ..train import train_model, training_job

    split = fold_records(cohort_tsv, folds_json, fold)
    model_spec = dict(config["models"][model_name])
    model_spec["patch_size"] = resolve_patch_size(model_spec, json.loads(Path(patch_sizes_json).read_text()))
    spacing = median_spacing(split["train"])
    # Here the size is known even when "auto", and the error can name the model's config key.
    check_patch_size(model_spec["network"], model_spec["patch_size"], config["ahnet"], spacing, f"models.{model_name}")
    job = training_job(
        config,
        model_spec,
        median_spacing=spacing,
        seed=job_seed(config["seed"], model_name, fold),
        encoder_path=encoder_path,
        threads=threads,
    )
    train_model(split["train"], split["validation"], job, out_dir)


def predict_job(
    cohort_tsv,
    folds_json,
    model_paths: dict[int, str],
    out_dir,
    *,
    inference: dict,
    threads: int | None = None,
) -> None:
    """Probabilities (float16, .npz) of every cross-validation subject by the model of the
    fold whose test split holds it: out_dir/fold{k}/{subject}.npz."""
    import numpy as np
    from tqdm import tqdm

    from ..checkpoints import load_model
    from ..devices import setup_torch
    from ..infer import predict_volume
    from ..io import load_nifti, save_probabilities

    device = setup_torch(None, threads)
    for fold, model_path in sorted(model_paths.items()):
        net, spec = load_model(model_path, device)
        for record in tqdm(
            fold_records(cohort_tsv, folds_json, fold)["test"],
            desc=f"predict fold {fold}",
            unit="subject",
        ):
            image = load_nifti(record["image"]).get_fdata(dtype=np.float32)
            probabilities = predict_volume(net, image, spec["patch_size"], **inference)
            save_probabilities(Path(out_dir) / f"fold{fold}" / f"{record['subject']}.npz", probabilities)


def segment_job(
    pipeline: str,
    cohort_tsv,
    folds_json,
    predictions_dir,
    out_dir,
    lesions_tsv,
    *,
    postprocess: dict,
) -> None:
    """Every cross-validation subject of one pipeline, raw and post-processed, and the
    lesion table of the post-processed segmentations (volume, uncertainty, TP/FP)."""
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from ..folds import fold_of_subject
    from ..io import load_nifti, load_probabilities, save_in_reference_space, write_tsv
    from ..lesions import lesion_table
    from ..pipelines import PIPELINES, STAGES
    from ..segment import segment

    fold_of = fold_of_subject(read_folds(folds_json))
    roles = PIPELINES[pipeline]
    rows = []
    for record in tqdm(read_cohort(cohort_tsv), desc=f"segment ({pipeline})", unit="subject"):
        subject, fold = record["subject"], fold_of[record["subject"]]
        probabilities = {
            role: load_probabilities(Path(predictions_dir) / model / f"fold{fold}" / f"{subject}.npz")
            for role, model in roles.items()
        }
        result = segment(probabilities, record["spacing"], **postprocess)
        for stage in STAGES:
            save_in_reference_space(Path(out_dir) / stage / f"{subject}.nii.gz", result.stage(stage), record["image"])
        truth = np.asarray(load_nifti(record["label"]).dataobj).astype(np.uint8)
        table = lesion_table(result.postprocessed, result.tumor_probability, record["spacing"], truth, subject)
        rows.append(table.assign(fold=fold))
    write_tsv(lesions_tsv, pd.concat(rows, ignore_index=True))


def evaluate_job(cohort_tsv, segmentations_dir, stage: str, out_tsv, *, tolerance_mm: float, jobs: int = 1) -> None:
    """The per-subject metrics of one pipeline and stage against the cohort's labels."""
    from ..evaluate import evaluate_pairs
    from ..io import write_tsv

    pairs = [
        (r["subject"], r["label"], Path(segmentations_dir) / stage / f"{r['subject']}.nii.gz")
        for r in read_cohort(cohort_tsv)
    ]
    write_tsv(out_tsv, evaluate_pairs(pairs, tolerance_mm=tolerance_mm, jobs=jobs))


def _read_metrics(path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", na_values=["NaN"])


def table2_job(metrics: dict[str, str], stem) -> None:
    """Table 2 from metrics/{pipeline}_{stage}.tsv files, keyed "pipeline/stage"."""
    from ..tables import table2, table2_values, write_table_files

    frames = {tuple(key.split("/")): _read_metrics(path) for key, path in metrics.items()}
    write_table_files(
        table2(frames),
        stem,
        values=table2_values(frames),
        caption="Table 2: the challenge's metrics, mean ± std over the cross-validation subjects",
    )


def table3_job(multiclass_tsv, dual_binary_tsv, stem, *, alpha: float) -> None:
    """Table 3: post-processed multi-class (M) against post-processed dual binary (B)."""
    from ..stats import compare_pipelines
    from ..tables import table3, write_table_files

    tests = compare_pipelines(_read_metrics(multiclass_tsv), _read_metrics(dual_binary_tsv), "M", "B", alpha=alpha)
    write_table_files(
        table3(tests, alpha=alpha),
        stem,
        values=tests,
        caption="Table 3: significance of the differences between the pipelines (M multi-class, B dual binary)",
    )


def heldout_job(pipeline: str, prediction_dirs: dict[str, str], labels_dir, out_tsv, *, tolerance_mm: float) -> None:
    """Scores on the held-out images of the ensemble and of each single-fold model."""
    import pandas as pd

    from ..evaluate import evaluate_pairs, pair_folders
    from ..io import write_tsv

    frames = []
    for name, folder in prediction_dirs.items():
        frame = evaluate_pairs(pair_folders(folder, labels_dir), tolerance_mm=tolerance_mm, jobs=1)
        frames.append(frame.assign(pipeline=pipeline, model=name))
    write_tsv(out_tsv, pd.concat(frames, ignore_index=True))


def heldout_table_job(tsvs, stem) -> None:
    """Mean held-out scores per pipeline: the ensemble against each single-fold model."""
    import pandas as pd

    frame = pd.concat([_read_metrics(p) for p in tsvs], ignore_index=True)
    columns = [
        "liver_dice",
        "liver_surface_dice",
        "liver_hd",
        "tumor_dice",
        "tumor_surface_dice",
        "tumor_hd",
        "tumor_burden_error",
    ]
    summary = frame.groupby(["pipeline", "model"], sort=False)[columns].mean().reset_index()
    _write_summary_table(
        summary, stem, "Held-out images: the five-fold ensemble against each single-fold model (means)"
    )


def phase_table_job(metrics: dict[str, str], cohort_tsv, stem, heldout_info=None) -> None:
    """Mean liver and tumour Dice per contrast phase and pipeline. METRICS maps
    "set/pipeline" to a metrics TSV: the cross-validation's post-processed metrics, phased
    by cohort.tsv, and the held-out ensemble's, phased by HELDOUT_INFO (the held-out
    images' patient_info JSON)."""
    from ..cohort import read_phases
    from ..tables import dice_by_phase

    phases = {"cross-validation": {r["subject"]: r["phase"] for r in read_cohort(cohort_tsv)}}
    if heldout_info:
        phases["held-out"] = read_phases(Path(heldout_info))
    frames = {tuple(key.split("/")): _read_metrics(path) for key, path in metrics.items()}
    _write_summary_table(
        dice_by_phase(frames, phases),
        stem,
        "Mean Dice per contrast phase (A arterial, D delayed, NC no contrast, P portal, U unknown): "
        "the cross-validation subjects, post-processed, and the held-out five-fold ensemble",
    )


def heldout_lesions_job(ensemble_dir, labels_dir, out_tsv, truth_tsv) -> None:
    """The ensemble's held-out lesion table (ensemble_dir/lesions.tsv, written without
    labels) with each lesion's status, TP or FP, from the held-out labels; and the
    held-out labels' own lesions, each detected or not (`truth_tsv`)."""
    import numpy as np
    import pandas as pd

    from ..evaluate import pair_folders
    from ..io import load_nifti, spacing_of, write_tsv
    from ..lesions import fill_status, read_lesion_table, truth_lesion_table

    table = read_lesion_table(Path(ensemble_dir) / "lesions.tsv")
    pairs = pair_folders(ensemble_dir, labels_dir)  # every label has its segmentation, and back
    unknown = sorted(set(table["subject"]) - {subject for subject, _, _ in pairs})
    if unknown:
        raise InputError(
            f"{ensemble_dir}/lesions.tsv: lesions of {', '.join(unknown)}, which has no segmentation "
            f"with a label in {labels_dir}"
        )
    rows, truth = [table.iloc[:0]], []  # the columns, when no image has a lesion
    for subject, gt_path, seg_path in pairs:
        gt_image = load_nifti(gt_path)
        seg, gt = (np.asarray(image.dataobj).astype(np.uint8) for image in (load_nifti(seg_path), gt_image))
        rows.append(fill_status(table, seg, gt, subject))
        truth.append(truth_lesion_table(seg, gt, spacing_of(gt_image), subject))
    write_tsv(out_tsv, pd.concat(rows, ignore_index=True))
    write_tsv(truth_tsv, pd.concat(truth, ignore_index=True))


def lesion_detection_job(truth_tsvs: dict[str, str], stem) -> None:
    """Beyond the paper: the held-out lesions each ensemble detects, by lesion size."""
    import pandas as pd

    from ..lesions import SIZE_BINS, detection_recall, size_label

    rows = []
    for pipeline, path in truth_tsvs.items():
        truth = pd.read_csv(path, sep="\t")
        for low, high in SIZE_BINS:
            lesions, detected, recall = detection_recall(truth, low, high)
            rows.append(
                {
                    "pipeline": pipeline,
                    "lesion diameter": size_label(low, high),
                    "lesions": lesions,
                    "detected": detected,
                    "recall": recall,
                }
            )
    _write_summary_table(
        pd.DataFrame(rows), stem, "Held-out lesions detected by the five-fold ensemble, by diameter (equivalent sphere)"
    )


def lesion_auroc_job(lesion_tsvs: dict[str, str], stem, heldout_tsvs: dict[str, str] | None = None) -> None:
    """Beyond the paper: how well the lesion uncertainty tells FP from TP lesions, on the
    cross-validation subjects and, where labels exist, on the held-out images (ensemble)."""
    import pandas as pd

    from ..lesions import read_lesion_table, spearman, uncertainty_auroc

    rows = []
    sets = [("cross-validation", lesion_tsvs), ("held-out (ensemble)", heldout_tsvs or {})]
    for images, tsvs in sets:
        for pipeline, path in tsvs.items():
            table = read_lesion_table(path)
            rho, _ = spearman(table)
            rows.append(
                {
                    "pipeline": pipeline,
                    "images": images,
                    "lesions": len(table),
                    "TP": int((table["status"] == "TP").sum()),
                    "FP": int((table["status"] == "FP").sum()),
                    "AUROC (FP vs TP)": uncertainty_auroc(table),
                    "Spearman (uncertainty, log volume)": rho,
                }
            )
    _write_summary_table(
        pd.DataFrame(rows), stem, "Lesion uncertainty: AUROC for telling false-positive from true-positive lesions"
    )


def learning_table_job(histories: dict[tuple[str, int], str], stem) -> None:
    """The learning table of every model and fold; HISTORIES maps (model, fold) to its
    history.tsv."""
    from ..learning import learning_table

    _write_summary_table(
        learning_table(histories),
        stem,
        "Validation Dice of every model and fold, per class: at the last epoch (final), at the kept epoch "
        "(lowest validation loss, the weights of model.pt) and the highest (max); training minutes",
    )


def _write_summary_table(frame, stem, caption: str) -> None:
    """A table beyond the paper's: TSV at full precision, Markdown rounded to 3 decimals."""
    from ..tables import write_table_files

    write_table_files(frame.round(3), stem, formats=("tsv", "md"), values=frame, caption=caption)
