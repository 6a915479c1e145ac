"""Checks of the workflow config, run when the workflow starts.

First the JSON schema (workflow/schemas/config.schema.yaml), the source of truth for
keys, types and defaults: its defaults are filled in, and the first violation becomes one
line naming the key, instead of jsonschema's dump of the schema. Then what a schema
cannot express: a patch size that AHNet's or DynUNet's architecture cannot take, NaN or
infinite numbers.

Torch-free (patch_rules, not nets): Snakemake imports this module at every start.
"""

from __future__ import annotations

import copy
import math
import os
import re
from functools import lru_cache
from pathlib import Path

import yaml
from jsonschema import ValidationError, validators
from jsonschema.exceptions import best_match

from .errors import ConfigError
from .imagenet import how_to_get
from .patch_rules import check_ahnet_patch_size, check_dynunet_patch_size

RESNET50_LAYERS = [3, 4, 6, 3]
# The one home of the config's keys, types and defaults: the workflow validates against it,
# and the command line takes its defaults from it (liverseg is installed from its checkout).
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def check_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Validate `config` in place (see validate_config), then check it beyond the schema.
    Raises ConfigError: '<key path>: <problem>'."""
    validate_config(config, schema_path)
    _check_finite(config, [])
    dataset = config["dataset"]
    if dataset["source"] == "atlas" and not Path(dataset["root"]).is_dir():
        raise ConfigError(
            f"dataset.root: folder {dataset['root']!r} not found; put the ATLAS training data there "
            "(imagesTr/, labelsTr/, patient_info_train.json; see README) or set dataset.root, "
            "or run the synthetic demo with --configfile config/demo.yaml"
        )
    _check_imagenet_encoder(config["ahnet"])
    psp = config["ahnet"]["psp_block_num"]
    for name, model in config["models"].items():
        size = model["patch_size"]
        if size == "auto":
            continue
        if model["network"] == "ahnet":
            check_ahnet_patch_size(size, psp, key=f"models.{name}.patch_size")
        elif model["network"] == "dynunet":
            check_dynunet_patch_size(size, key=f"models.{name}.patch_size")


def _check_finite(value, path: list) -> None:
    """ConfigError naming the key of a NaN or infinite number (YAML's .nan, .inf), which
    the schema's bounds let through: every comparison with NaN is false."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, path + [key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, path + [index])
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_key_path(path)}: {value} is not a finite number")


def _check_imagenet_encoder(ahnet: dict) -> None:
    """The ImageNet encoder is a ResNet-50, and a configured copy of its weights must
    exist: both stop the workflow at its start, before any job."""
    if ahnet["encoder"] != "imagenet":
        return
    if list(ahnet["layers"]) != RESNET50_LAYERS:
        raise ConfigError(
            f"ahnet.layers {list(ahnet['layers'])}: ahnet.encoder 'imagenet' is torchvision's ResNet-50, "
            f"which needs layers {RESNET50_LAYERS} (a smaller AHNet takes ahnet.encoder 'slices' or 'none')"
        )
    weights = ahnet["imagenet_weights"]
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"ahnet.imagenet_weights {weights}: file not found. {how_to_get()}")


def schema_default(key: str, schema_path: str | os.PathLike = SCHEMA_PATH):
    """The schema's default of a key path such as "inference.overlap" (KeyError naming the
    key when the schema gives it none)."""
    return copy.deepcopy(_schema_entry(key, "default", schema_path))  # the cached schema stays as read


def schema_choices(key: str, schema_path: str | os.PathLike = SCHEMA_PATH) -> tuple:
    """The values the schema allows for a key path such as "inference.mode" (its enum;
    KeyError naming the key when it has none)."""
    return tuple(_schema_entry(key, "enum", schema_path))


def _schema_entry(key: str, entry: str, schema_path: str | os.PathLike):
    node = _schema(str(schema_path))
    try:
        for part in key.split("."):
            node = node["properties"][part]
        return node[entry]
    except KeyError:
        raise KeyError(f"{key}: no {entry} in {schema_path}") from None


@lru_cache
def _schema(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Check `config` against the JSON schema at `schema_path` and fill in the schema's
    defaults (in place, as snakemake.utils.validate does); ConfigError naming the first
    offending key otherwise."""
    schema = yaml.safe_load(Path(schema_path).read_text())  # fresh: filling defaults shares them with `config`
    validator = _filling_defaults(validators.validator_for(schema))(schema)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(_describe(error))


def _filling_defaults(validator_class):
    """The validator class, setting each property's `default` before checking it
    (the recipe of jsonschema's FAQ, which Snakemake uses too)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in props.items():
                if "default" in subschema:
                    instance.setdefault(name, subschema["default"])
        yield from check_properties(validator, props, instance, schema)

    return validators.extend(validator_class, {"properties": properties})


def _describe(error: ValidationError) -> str:
    """'<key path>: <problem>', e.g. 'training.learning_rte: unknown key (allowed: ...)'."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and error.schema.get("properties"):
        allowed = list(error.schema["properties"])
        unknown = [key for key in error.instance if key not in allowed]
        return f"{_key_path(path + unknown[:1])}: unknown key (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return f"{_key_path(path + missing[:1])}: required key missing"
    return f"{_key_path(path)}: {error.message}{_number_hint(error)}"


def _number_hint(error: ValidationError) -> str:
    """A hint for a number YAML read as text: YAML 1.1 (PyYAML, Snakemake) takes 1e-3 for a
    string, a float needing a dot (1.0e-3); a quoted number is text too."""
    text = error.instance
    if error.validator != "type" or not isinstance(text, str):
        return ""
    try:
        float(text)
    except ValueError:
        return ""
    exponent = re.fullmatch(r"\s*([+-]?\d+)([eE][+-]?\d+)\s*", text)
    if exponent:
        return f" (YAML reads {text} as text: write {exponent[1]}.0{exponent[2]})"
    return " (a number in quotes is text to YAML: write it without quotes)"


def _key_path(parts: list) -> str:
    """models.ahnet_tumor.patch_size[2]; 'config' for the top level."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return text or "config"


def out_channels(task: str) -> int:
    return 3 if task == "multiclass" else 2
