"""The paper's three pipelines at work: from model probabilities to segmentations (§2.3-2.5, §2.8).

`multiclass` and `dynunet` take the argmax of one 3-class model; `dual_binary` combines
the whole-liver and the tumour model (tumour where the tumour model says so, liver where
the liver model says so and not tumour). Each is produced raw and post-processed, with
the tumour probability map that the lesion uncertainty is computed from. Which models a
pipeline combines, and its stages: `liverseg.pipelines`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .postprocess import aggregate_dual_binary, postprocess_dual_binary, postprocess_multiclass

__all__ = ["Segmentation", "average", "segment"]


@dataclass
class Segmentation:
    raw: np.ndarray  # uint8 labels 0/1/2
    postprocessed: np.ndarray  # uint8 labels 0/1/2
    tumor_probability: np.ndarray  # float32, the tumour class's softmax probability

    def stage(self, name: str) -> np.ndarray:
        return getattr(self, name)


def segment(probabilities: dict[str, np.ndarray], spacing, *, dilation_mm: float, closing_mm: float) -> Segmentation:
    """Segment one subject; `probabilities` maps each role ("multiclass", or "liver" and
    "tumor") to that model's softmax output (C, H, W, D)."""
    if "multiclass" in probabilities:
        probs = probabilities["multiclass"]
        raw = np.argmax(probs, axis=0).astype(np.uint8)
        post = postprocess_multiclass(raw, spacing, dilation_mm=dilation_mm, closing_mm=closing_mm)
        return Segmentation(raw, post, probs[2].astype(np.float32))
    liver = probabilities["liver"][1] > 0.5
    tumor_probability = probabilities["tumor"][1].astype(np.float32)
    tumor = tumor_probability > 0.5
    raw = aggregate_dual_binary(liver, tumor)
    post = postprocess_dual_binary(liver, tumor, spacing, closing_mm=closing_mm)
    return Segmentation(raw, post, tumor_probability)


def average(probability_maps: list[np.ndarray]) -> np.ndarray:
    """The ensemble: the mean of the fold models' probabilities (paper §4)."""
    return np.mean(np.stack(probability_maps), axis=0)
