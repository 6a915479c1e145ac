"""Segmenting images outside the cross-validation with an ensemble of fold models (§4).

The models' tasks decide the pipeline: 3-class models give the multi-class pipeline,
whole-liver plus tumour models the dual binary one. Each model's probabilities are
averaged over its folds, then segmented and post-processed like the cross-validation
predictions, with a lesion uncertainty report. The same code serves the workflow's
ensemble rule and `liverseg predict`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .cohort import natural_key
from .devices import torch_device
from .errors import InputError, raise_problems
from .io import load_image, save_in_reference_space, spacing_of, write_tsv
from .paths import check_output_folder, is_hidden_below, real, refuse_overwriting, visible_files
from .segment import average, segment

_IMAGE = re.compile(r"^(.+?)(_0000)?\.nii(\.gz)?$")


def model_files(paths) -> list[Path]:
    """model.pt files named directly or found under the given folders (hidden ones left
    out), each once: a model named twice would weigh twice in the average."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("model.pt") if not is_hidden_below(p, path)))
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path}: model file or folder not found")
    if not found:
        raise InputError(f"no model.pt under {', '.join(map(str, paths))}")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(real(path), path)
    return list(unique.values())


def image_files(path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        if not _IMAGE.match(path.name):
            raise InputError(f"{path}: not a NIfTI image name (*.nii.gz or *.nii)")
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: image file or folder not found")
    images = sorted((p for p in visible_files(path) if _IMAGE.match(p.name)), key=lambda p: natural_key(p.name))
    if not images:
        raise InputError(f"{path}: no .nii.gz images")
    return images


def load_ensemble(paths, device=None) -> tuple[str, dict[str, list]]:
    """Load the models; return the pipeline they form and {role: [(group, net, spec)]},
    the group being the folder that holds the model.pt (fold1, ...)."""
    from .checkpoints import load_model

    roles: dict[str, list] = defaultdict(list)
    for path in model_files(paths):
        net, spec = load_model(path, device=device)
        roles[spec["task"]].append((path.parent.name, net, spec))
    if set(roles) == {"multiclass"}:
        return "multiclass", dict(roles)
    if set(roles) == {"liver", "tumor"}:
        return "dual_binary", dict(roles)
    raise InputError(
        f"the models form no pipeline: tasks {sorted(roles)}; give 3-class models, or whole-liver and tumour models"
    )


def predict_images(
    model_paths,
    images,
    out_dir,
    *,
    postprocess: dict,
    inference: dict,
    single_folds: bool = False,
    device=None,
) -> pd.DataFrame:
    """Segment every image with the ensemble; write out_dir/<image name> and lesions.tsv.

    With `single_folds`, the ensemble goes to out_dir/ensemble/ and each fold's models
    alone (the models in one folder, e.g. fold3/) to out_dir/<folder>/, so the ensemble
    can be scored against its members. Returns the ensemble's lesion table (one row per
    predicted tumour lesion, with its uncertainty).
    """
    from .infer import predict_volume
    from .lesions import lesion_table

    # Everything that can fail on the user's input fails here, before the first output.
    device = torch_device(device)
    out_dir = Path(out_dir)
    ensemble_dir = out_dir / "ensemble" if single_folds else out_dir
    images, models = image_files(images), model_files(model_paths)
    check_output_folder(out_dir)
    folders = [ensemble_dir] + [out_dir / m.parent.name for m in models if single_folds]
    refuse_overwriting(
        [f / p.name for f in folders for p in images] + [ensemble_dir / "lesions.tsv"],
        images + models,
    )
    pipeline, roles = load_ensemble(models, device=device)
    problems = []
    for path in tqdm(images, desc="check images", unit="image"):
        try:
            load_image(path)
        except InputError as exc:
            problems.append(str(exc))
    raise_problems(problems, "cannot segment")

    groups = sorted(set.intersection(*({g for g, _, _ in members} for members in roles.values())))
    rows = []
    for path in tqdm(images, desc=f"ensemble ({pipeline})", unit="image"):
        img, image = load_image(path)
        spacing = spacing_of(img)
        maps = {
            role: [(g, predict_volume(m, image, s["patch_size"], device=device, **inference)) for g, m, s in members]
            for role, members in roles.items()
        }
        result = segment(
            {role: average([p for _, p in members]) for role, members in maps.items()},
            spacing,
            **postprocess,
        )
        save_in_reference_space(ensemble_dir / path.name, result.postprocessed, path)
        rows.append(lesion_table(result.postprocessed, result.tumor_probability, spacing, None, _stem(path)))
        for group in groups if single_folds else []:
            alone = segment(
                {role: average([p for g, p in members if g == group]) for role, members in maps.items()},
                spacing,
                **postprocess,
            )
            save_in_reference_space(out_dir / group / path.name, alone.postprocessed, path)
    table = pd.concat(rows, ignore_index=True)
    write_tsv(ensemble_dir / "lesions.tsv", table)
    return table


def _stem(path: Path) -> str:
    return _IMAGE.match(path.name).group(1)
