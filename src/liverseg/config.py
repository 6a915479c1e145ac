"""Checks of the workflow config beyond its JSON schema, run when the workflow starts.

The schema (workflow/schemas/config.schema.yaml) catches unknown keys and wrong types;
these checks catch what a schema cannot express, e.g. a patch size that AHNet's
architecture cannot take, naming the key.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError


def check_config(config: dict) -> None:
    from .nets import check_ahnet_patch_size  # torch import only when needed

    dataset = config["dataset"]
    if dataset["source"] == "atlas" and not Path(dataset["root"]).is_dir():
        raise ConfigError(
            f"dataset.root: folder {dataset['root']!r} not found; put the ATLAS training data there "
            "(imagesTr/, labelsTr/, patient_info_train.json; see README) or set dataset.root, "
            "or run the synthetic demo with --configfile config/demo.yaml"
        )
    psp = config["ahnet"]["psp_block_num"]
    for name, model in config["models"].items():
        size = model["patch_size"]
        if size == "auto":
            continue
        if model["network"] == "ahnet":
            check_ahnet_patch_size(size, psp, key=f"models.{name}.patch_size")


def out_channels(task: str) -> int:
    return 3 if task == "multiclass" else 2
