"""The paper's three pipelines by name: the models each combines, the stages each is
produced in (raw and post-processed), and its steps in words (Figure 2).

Light on purpose: the Snakefile imports it at parse time (workflow/rules/common.smk), so
it imports nothing beyond the standard library (no numpy, torch or compiled packages;
tests/test_config.py checks). The arrays themselves: `liverseg.segment`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "FIGURE2_PIPELINES",
    "PIPELINES",
    "STAGES",
    "PipelineSteps",
    "describe_pipeline",
    "pipelines_for",
]

# pipeline -> {role: model name}; roles "multiclass", or "liver" and "tumor"
PIPELINES: dict[str, dict[str, str]] = {
    "multiclass": {"multiclass": "ahnet_multiclass"},
    "dual_binary": {"liver": "ahnet_liver", "tumor": "ahnet_tumor"},
    "dynunet": {"multiclass": "dynunet_multiclass"},
}
STAGES = ("raw", "postprocessed")
# The paper's Figure 2 shows these two; DynUNet is the multi-class pipeline with another network.
FIGURE2_PIPELINES = ("multiclass", "dual_binary")
TITLES = {
    "multiclass": "Multi-class pipeline",
    "dual_binary": "Dual binary pipeline",
    "dynunet": "DynUNet ablation",
}
NETWORKS = {"ahnet": "AHNet", "dynunet": "DynUNet"}
TASKS = {"multiclass": "3 classes", "liver": "whole liver", "tumor": "tumour"}
ENCODER_TEXT = {
    "imagenet": "ImageNet encoder",
    "slices": "2.5D-pretrained encoder",
    "none": "random start",
}


def pipelines_for(models) -> list[str]:
    """The pipelines whose models the config trains."""
    return [name for name, roles in PIPELINES.items() if set(roles.values()) <= set(models)]


@dataclass(frozen=True)
class PipelineSteps:
    """What a pipeline does from image to lesion uncertainty, in words (Figure 2)."""

    name: str
    title: str
    models: list[str]  # one text per model: name, network, task, patch size, encoder
    combine: str  # model outputs -> raw 3-class segmentation
    postprocess: list[str]  # the three steps as this pipeline runs them
    uncertainty: str


def describe_pipeline(
    pipeline: str,
    models: Mapping[str, Mapping],
    patch_sizes: Mapping[str, Sequence[int]],
    *,
    encoder: str,
    dilation_mm: float,
    closing_mm: float,
) -> PipelineSteps:
    """The steps of `pipeline` as segment() and postprocess run them, with the configured
    models (`models`: the config's entries; `patch_sizes`: each model's resolved size)."""
    roles = PIPELINES[pipeline]
    boxes = []
    for name in roles.values():
        model = models[name]
        size = "×".join(map(str, patch_sizes[name]))
        start = f"\n{ENCODER_TEXT[encoder]}" if model["network"] == "ahnet" else ""
        boxes.append(f"{name}\n{NETWORKS[model['network']]}, {TASKS[model['task']]}\n{size} patches{start}")
    multiclass = "multiclass" in roles
    combine = (
        "argmax of the\n3 classes" if multiclass else "tumour: p(tumour) > 0.5\nliver: p(liver) > 0.5,\nnot tumour"
    )
    step2 = f"2. drop lesions with no liver\nvoxel within {dilation_mm:g} mm" if multiclass else "2. tumour AND liver"
    steps = [
        "1. largest liver component,\nholes filled",
        step2,
        f"3. close tumours ({closing_mm:g} mm)\nin the liver",
    ]
    uncertainty = "per lesion (26-connected):\nL_unc = 1 − mean p(tumour)"
    return PipelineSteps(pipeline, TITLES.get(pipeline, pipeline), boxes, combine, steps, uncertainty)
