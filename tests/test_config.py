"""The config check the workflow runs as it starts: the schema's violations as one line
naming the key, its defaults filled in, AHNet's size rules, and no torch import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from liverseg.config import check_config, validate_config
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


def test_unknown_key_names_it_and_the_allowed_keys(config):
    config["training"]["learning_rte"] = 0.1
    message = error_of(config)
    assert message.startswith("training.learning_rte: unknown key (allowed: learning_rate, batch_size, "), message
    assert "\n" not in message


def test_unknown_top_level_key(config):
    config["trainnig"] = {"max_epochs": 3}
    assert error_of(config).startswith("trainnig: unknown key (allowed: dataset, seed, folds, ")


def test_wrong_type_names_the_key(config):
    config["training"]["max_epochs"] = "ten"
    assert error_of(config) == "training.max_epochs: 'ten' is not of type 'integer'"


def test_nested_keys_and_list_items(config):
    config["models"]["ahnet_tumor"]["patch_sise"] = [64, 64, 32]
    assert error_of(config).startswith("models.ahnet_tumor.patch_sise: unknown key (allowed: network, task, patch_size)")
    del config["models"]["ahnet_tumor"]["patch_sise"]
    config["ahnet"]["layers"] = [1, 0, 1, 1]
    assert error_of(config) == "ahnet.layers[1]: 0 is less than the minimum of 1"
    config["ahnet"]["layers"] = [1, 1, 1, 1]
    del config["models"]["ahnet_tumor"]["task"]
    assert error_of(config) == "models.ahnet_tumor.task: required key missing"


def test_schema_defaults_are_filled_in():
    config = {"dataset": {"source": "synthetic"},
              "models": {"m": {"network": "dynunet", "task": "liver", "patch_size": "auto"}}}
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
    with pytest.raises(ConfigError, match=r"ahnet\.layers \[1, 1, 1, 1\]: ahnet\.encoder 'imagenet' is torchvision's ResNet-50"):
        check_config(config, SCHEMA)
    config["ahnet"]["encoder"] = "slices"
    check_config(config, SCHEMA)
    config["ahnet"].update(encoder="imagenet", layers=[3, 4, 6, 3], imagenet_weights=str(tmp_path / "resnet50.pth"))
    with pytest.raises(ConfigError, match=r"ahnet\.imagenet_weights .*resnet50\.pth: file not found\. Get them one of two ways"):
        check_config(config, SCHEMA)
    (tmp_path / "resnet50.pth").write_bytes(b"checked by the rule that copies it")
    check_config(config, SCHEMA)


def workflow_imports() -> list[str]:
    """The liverseg modules the Snakefile and its rule files import."""
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
    pattern = re.compile(r"^\s*(?:from|import)\s+(liverseg[\w.]*)", re.M)
    return sorted({m for path in sources for m in pattern.findall(path.read_text())})


def test_workflow_start_imports_no_torch():
    """Snakemake imports these modules and checks the config at every start (even a dry
    run): torch or MONAI there would cost seconds. A fresh interpreter, so that nothing
    this test session imported counts."""
    modules = workflow_imports()
    assert "liverseg.config" in modules, modules
    code = "\n".join([
        "import json, sys, yaml",
        *(f"import {m}" for m in modules),
        f"config = yaml.safe_load(open({str(REPO / 'config/config.yaml')!r}))",
        "config['dataset']['source'] = 'synthetic'",
        f"liverseg.config.check_config(config, {str(SCHEMA)!r})",
        "print(json.dumps(sorted(m for m in ('torch', 'monai', 'torchio') if m in sys.modules)))",
    ])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == [], f"imported by {modules}"
