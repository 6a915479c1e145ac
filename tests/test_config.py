"""The config check the workflow runs as it starts: the schema's violations as one line
naming the key, its defaults filled in, AHNet's size rules, and no torch nor compiled
package imported."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from liverseg.config import SCHEMA_PATH, check_config, schema_default, validate_config
from liverseg.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


@pytest.fixture
def config() -> dict:
    """config/config.yaml on the synthetic cohort (no ATLAS folder needed)."""
    loaded = yaml.safe_load((REPO / "config/config.yaml").read_text())
    loaded["dataset"]["source"] = "synthetic"
    return loaded


def error_of(config: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    return str(caught.value)


def test_valid_config_passes(config):
    check_config(config, SCHEMA)


@pytest.mark.parametrize("name", ["demo.yaml", "synthetic.yaml"])
def test_the_cpu_configs_pass_over_config_yaml(config, name):
    """demo.yaml and synthetic.yaml are read over config.yaml, as `--configfile` merges them."""

    def merged(base: dict, over: dict) -> dict:
        return {
            k: merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
            for k, v in {**base, **over}.items()
        }

    cpu = merged(
        yaml.safe_load((REPO / "config/config.yaml").read_text()),
        yaml.safe_load((REPO / "config" / name).read_text()),
    )
    check_config(cpu, SCHEMA)
    assert cpu["augmentation"]["flip"] == 0


def test_unknown_key_names_it_and_the_allowed_keys(config):
    config["training"]["learning_rte"] = 0.1
    message = error_of(config)
    assert message.startswith(
        "training.learning_rte: unknown key (allowed: learning_rate, lr_schedule, batch_size, "
    ), message
    assert "\n" not in message


def test_unknown_top_level_key(config):
    config["trainnig"] = {"max_epochs": 3}
    assert error_of(config).startswith("trainnig: unknown key (allowed: dataset, seed, folds, ")


def test_wrong_type_names_the_key(config):
    config["training"]["max_epochs"] = "ten"
    assert error_of(config) == "training.max_epochs: 'ten' is not of type 'integer'"


def test_nested_keys_and_list_items(config):
    config["models"]["ahnet_tumor"]["patch_sise"] = [64, 64, 32]
    assert error_of(config).startswith(
        "models.ahnet_tumor.patch_sise: unknown key (allowed: network, task, patch_size)"
    )
    del config["models"]["ahnet_tumor"]["patch_sise"]
    config["ahnet"]["layers"] = [1, 0, 1, 1]
    assert error_of(config) == "ahnet.layers[1]: 0 is less than the minimum of 1"
    config["ahnet"]["layers"] = [1, 1, 1, 1]
    del config["models"]["ahnet_tumor"]["task"]
    assert error_of(config) == "models.ahnet_tumor.task: required key missing"


def test_schema_defaults_are_filled_in():
    config = {
        "dataset": {"source": "synthetic"},
        "models": {"m": {"network": "dynunet", "task": "liver", "patch_size": "auto"}},
    }
    validate_config(config, SCHEMA)
    assert config["training"]["max_epochs"] == 1000
    assert config["dataset"]["synthetic"]["subjects"] == 60
    assert config["resources"]["gpu_job"] == {"threads": 8, "runtime": 1440, "mem_mb": 32000}


def test_ahnet_patch_size_rule_is_checked(config):
    config["models"]["ahnet_tumor"]["patch_size"] = [64, 64, 48]
    with pytest.raises(ConfigError, match=r"models\.ahnet_tumor\.patch_size \[64, 64, 48\].*AHNet rule"):
        check_config(config, SCHEMA)


def test_imagenet_encoder_needs_a_resnet50_and_an_existing_configured_copy(config, tmp_path):
    """Both stop the workflow at its start, before any job; a missing copy names both ways
    to the weights."""
    assert config["ahnet"]["encoder"] == "imagenet"  # config.yaml's default: the paper's encoder
    config["ahnet"]["layers"] = [1, 1, 1, 1]
    with pytest.raises(
        ConfigError,
        match=r"ahnet\.layers \[1, 1, 1, 1\]: ahnet\.encoder 'imagenet' is torchvision's ResNet-50",
    ):
        check_config(config, SCHEMA)
    config["ahnet"]["encoder"] = "slices"
    check_config(config, SCHEMA)
    config["ahnet"].update(encoder="imagenet", layers=[3, 4, 6, 3], imagenet_weights=str(tmp_path / "resnet50.pth"))
    with pytest.raises(
        ConfigError,
        match=r"ahnet\.imagenet_weights .*resnet50\.pth: file not found\. Get them one of two ways",
    ):
        check_config(config, SCHEMA)
    (tmp_path / "resnet50.pth").write_bytes(b"checked by the rule that copies it")
    check_config(config, SCHEMA)


def workflow_imports() -> list[str]:
    """The liverseg modules the Snakefile and its rule files import."""
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
    pattern = re.compile(r"^\s*(?:from|import)\s+(liverseg[\w.]*)", re.M)
    return sorted({m for path in sources for m in pattern.findall(path.read_text())})


# What the Snakefile's parse must not import: it runs at every start, even a dry run, so
# it stays light (no torch, MONAI or TorchIO, no compiled packages).
HEAVY_MODULES = ("torch", "monai", "torchio", "numpy", "scipy", "cc3d", "edt")


def test_workflow_start_imports_no_torch_nor_compiled_packages():
    """Snakemake imports these modules and checks the config at every start (even a dry
    run): torch or MONAI there would cost seconds. A fresh interpreter, so that nothing
    this test session imported counts."""
    modules = workflow_imports()
    assert {"liverseg.config", "liverseg.pipelines"} <= set(modules), modules
    code = "\n".join(
        [
            "import json, sys, yaml",
            *(f"import {m}" for m in modules),
            f"config = yaml.safe_load(open({str(REPO / 'config/config.yaml')!r}))",
            "config['dataset']['source'] = 'synthetic'",
            f"liverseg.config.check_config(config, {str(SCHEMA)!r})",
            f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))",
        ]
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == [], f"imported by {modules}"


def check_error_of(config: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        check_config(config, SCHEMA)
    return str(caught.value)


@pytest.mark.parametrize(
    "text, hint",
    [
        ("1e-3", "(YAML reads 1e-3 as text: write 1.0e-3)"),
        ("2E+4", "(YAML reads 2E+4 as text: write 2.0E+4)"),
        ("0.5", "(a number in quotes is text to YAML: write it without quotes)"),
    ],
)
def test_a_number_read_as_text_gets_a_hint(config, text, hint):
    config["training"]["learning_rate"] = text
    assert error_of(config) == f"training.learning_rate: '{text}' is not of type 'number' {hint}"


def test_yaml_really_reads_1e_3_as_text():
    assert yaml.safe_load("learning_rate: 1e-3") == {"learning_rate": "1e-3"}
    assert yaml.safe_load("learning_rate: 1.0e-3") == {"learning_rate": 0.001}


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("training", "learning_rate", float("nan")),
        ("loss", "margin", float("inf")),
        ("augmentation", "flip", float("-inf")),  # the schema's bounds catch this one first
    ],
)
def test_nan_and_infinite_numbers_are_refused(config, section, key, value):
    config[section][key] = value
    message = check_error_of(config)
    assert message.startswith(f"{section}.{key}: {value} "), message
    assert "\n" not in message


@pytest.mark.parametrize("size, axis, factor", [([64, 64, 36], 2, 8), ([100, 64, 32], 0, 16), ([64, 18, 32], 1, 4)])
def test_dynunet_patch_size_is_checked_at_start_with_the_real_key(config, size, axis, factor):
    config["models"]["dynunet_multiclass"]["patch_size"] = size
    message = check_error_of(config)
    assert message.startswith(
        f"models.dynunet_multiclass.patch_size {size}: axis {axis} ({size[axis]}) must be a multiple of {factor}"
    ), message
    assert "<name>" not in message


@pytest.mark.parametrize("size", [[64, 64, 32], [256, 256, 64], [24, 40, 20], [160, 96, 48]])
def test_dynunet_start_check_passes_sizes_every_plan_takes(config, size):
    """The start check is the plan's rule for the worst spacing: what it passes, every plan takes."""
    from liverseg.nets import dynunet_plan

    config["models"]["dynunet_multiclass"]["patch_size"] = size
    check_config(config, SCHEMA)
    for spacing in ([1, 1, 1], [0.7, 0.7, 4.0], [3.0, 0.7, 0.7], [1, 5, 1], [0.01, 9, 9]):
        dynunet_plan(spacing, size)


def test_the_command_line_takes_its_defaults_from_the_schema():
    """One home for every default: `liverseg predict` and `evaluate` use the workflow's."""
    from liverseg.cli import build_parser

    assert SCHEMA_PATH == SCHEMA.resolve()
    parser = build_parser()
    predict = parser.parse_args(["predict", "--models", "m", "--input", "i", "--output", "o"])
    assert (predict.overlap, predict.sw_batch_size) == (
        schema_default("inference.overlap"),
        schema_default("inference.sw_batch_size"),
    )
    assert (
        (predict.dilation_mm, predict.closing_mm)
        == (5, 3)
        == (
            schema_default("postprocess.dilation_mm"),
            schema_default("postprocess.closing_mm"),
        )
    )
    evaluate = parser.parse_args(["evaluate", "--pred", "p", "--gt", "g", "--out", "o"])
    assert evaluate.tolerance_mm == schema_default("evaluation.tolerance_mm") == 5
    with pytest.raises(KeyError, match="models: no default"):
        schema_default("models")
