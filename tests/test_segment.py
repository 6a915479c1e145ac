"""The pipelines' aggregation of model probabilities, and the ensemble average."""

from __future__ import annotations

import numpy as np

from liverseg.pipelines import PIPELINES, pipelines_for
from liverseg.segment import average, segment


def probabilities(labels: np.ndarray, classes: int) -> np.ndarray:
    """Confident softmax maps (0.9 on the given label) for a label volume."""
    out = np.full((classes,) + labels.shape, 0.1 / (classes - 1), np.float32)
    for c in range(classes):
        out[c][labels == c] = 0.9
    return out


def test_dual_binary_aggregates_tumor_over_liver():
    liver = np.zeros((12, 12, 4), np.uint8)
    liver[2:10, 2:10, :] = 1
    tumor = np.zeros_like(liver)
    tumor[4:6, 4:6, 1:3] = 1  # inside the liver
    tumor[0, 0, 0] = 1  # outside: kept raw, removed by post-processing
    result = segment(
        {"liver": probabilities(liver, 2), "tumor": probabilities(tumor, 2)},
        (1, 1, 1),
        dilation_mm=2,
        closing_mm=1,
    )
    assert result.raw[4, 4, 1] == 2 and result.raw[3, 3, 1] == 1 and result.raw[0, 0, 0] == 2
    assert result.postprocessed[4, 4, 1] == 2 and result.postprocessed[0, 0, 0] == 0
    assert result.tumor_probability[4, 4, 1] == np.float32(0.9)


def test_multiclass_is_the_argmax_and_keeps_the_tumor_probability():
    labels = np.zeros((12, 12, 4), np.uint8)
    labels[2:10, 2:10, :] = 1
    labels[5:7, 5:7, 1:3] = 2
    probs = probabilities(labels, 3)
    result = segment({"multiclass": probs}, (1, 1, 1), dilation_mm=2, closing_mm=1)
    assert np.array_equal(result.raw, labels)
    assert np.array_equal(result.tumor_probability, probs[2])


def test_ensemble_averages_probabilities():
    a, b = np.zeros((2, 3, 3, 3), np.float32), np.ones((2, 3, 3, 3), np.float32)
    assert np.allclose(average([a, b]), 0.5)


def test_pipelines_follow_the_configured_models():
    assert pipelines_for(["ahnet_multiclass", "ahnet_liver", "ahnet_tumor", "dynunet_multiclass"]) == list(PIPELINES)
    assert pipelines_for(["ahnet_liver"]) == []
