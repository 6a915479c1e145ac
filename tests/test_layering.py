"""The arrows between the library's modules point one way (DESIGN.md): the science modules
never import the workflow's glue (`liverseg.workflow`), and inference never imports training."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "liverseg"
SCIENCE = sorted(p for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "cli"})
INFERENCE = ("infer", "ensemble", "checkpoints", "segment", "postprocess", "lesions")


def imported_modules(path: Path) -> set[str]:
    """Every liverseg module `path` imports, at any depth of its code, as a dotted name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative to the package
                base = "liverseg." + base if base else "liverseg"
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("liverseg")}


@pytest.mark.parametrize("path", SCIENCE, ids=lambda p: p.stem)
def test_science_modules_do_not_import_the_workflow_glue(path):
    glue = {n for n in imported_modules(path) if n.startswith("liverseg.workflow")}
    assert not glue, f"{path.name} imports {sorted(glue)}"


@pytest.mark.parametrize("module", INFERENCE)
def test_inference_does_not_import_training(module):
    imported = imported_modules(PACKAGE / f"{module}.py")
    assert not imported & {"liverseg.train", "liverseg.pretrain"}, f"{module}.py imports training"


def test_the_import_scan_sees_a_relative_import():
    """The scan is not blind: the workflow's jobs module imports training."""
    assert "liverseg.train" in imported_modules(PACKAGE / "workflow" / "jobs.py")
