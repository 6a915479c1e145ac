"""The conda environments pin exactly what the package pins, and every rule names one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def package_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(req.split("==") for req in requirements)


def env_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pins = {}
    for entry in env["dependencies"]:
        for item in entry["pip"] if isinstance(entry, dict) else []:
            if "==" in item:
                name, version = item.split("==")
                pins[name] = version
    return pins


def test_every_env_pin_equals_the_package_pin():
    pins = package_pins()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs
    for path in envs:
        for name, version in env_pins(path).items():
            assert pins.get(name) == version, f"{path.name}: {name}=={version}, pyproject pins {pins.get(name)}"


def test_every_rule_names_an_existing_env():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = re.findall(r"^rule (\w+):", text, flags=re.M)
        envs = re.findall(r'conda:\s*\n\s*"([^"]+)"', text)
        assert len(envs) == len([r for r in rules if r != "all"]), f"{smk.name}: a rule without conda:"
        for env in envs:
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env} not found"
