"""Sliding-window inference: shapes, padding and cropping, normalisation, probabilities,
and equality with TorchIO's normalisation and MONAI's sliding windows called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio
from monai.inferers import sliding_window_inference
from torch import nn

from liverseg.augment import normalise
from liverseg.errors import InputError
from liverseg.infer import predict_volume, sliding_window_logits
from liverseg.nets import build_network


class VoxelwiseNet(nn.Module):
    """Logits (x, -x) per voxel: the exact output is known for every voxel, so any
    misplaced window, padding or crop shows up."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, kernel_size=1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1, 1))

    def forward(self, x):
        return self.conv(x)


@pytest.fixture
def image() -> np.ndarray:
    """Larger than the patch in-plane, shorter along the slice axis (like a 44-slice
    ATLAS volume under a 64-slice patch)."""
    rng = np.random.default_rng(0)
    return (rng.normal(100, 20, (45, 38, 7)) + np.linspace(0, 50, 7)).astype(np.float32)


# The sliding windows, as the config's inference; in float32, for exact outputs on any CPU
# ("auto" computes in bfloat16 where the CPU has it natively).
WINDOW = {"overlap": 0.5, "mode": "gaussian", "sw_batch_size": 2, "precision": "float32"}


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_voxelwise_prediction_is_exact(image, mode):
    probs = predict_volume(VoxelwiseNet(), image, (32, 32, 16), **{**WINDOW, "mode": mode})
    assert probs.shape == (2,) + image.shape and probs.dtype == np.float32
    expected_foreground = 1 / (1 + np.exp(2 * normalise(image)))  # softmax of (x, -x), class 1
    np.testing.assert_allclose(probs[1], expected_foreground, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-5)


def test_bfloat16_inference_is_float32_within_its_rounding(image):
    """inference.precision bfloat16 (what "auto" is on a CPU with native bfloat16): the
    network computes in bfloat16, the blending and softmax in float32."""
    exact = predict_volume(VoxelwiseNet(), image, (32, 32, 16), **WINDOW)
    rounded = predict_volume(VoxelwiseNet(), image, (32, 32, 16), **{**WINDOW, "precision": "bfloat16"})
    assert rounded.dtype == np.float32 and not np.array_equal(rounded, exact)
    np.testing.assert_allclose(rounded, exact, atol=0.02)


def test_real_network_shape_and_probabilities(image):
    torch.manual_seed(0)
    net = build_network("dynunet", 3, (32, 32, 16), None, {"filters": 4}, (0.8, 0.8, 3.0))
    net.train()
    probs = predict_volume(net, image, (32, 32, 16), **{**WINDOW, "sw_batch_size": 3})
    assert probs.shape == (3,) + image.shape
    assert probs.min() >= 0
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-5)
    assert net.training  # the caller's mode is given back


def test_logits_are_blended_network_outputs(image):
    logits = sliding_window_logits(VoxelwiseNet(), image, (32, 32, 16), **{**WINDOW, "overlap": 0.25})
    assert logits.shape == (1, 2) + image.shape and logits.dtype == torch.float32
    np.testing.assert_allclose(logits[0, 0].numpy(), normalise(image), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"overlap": 1.0}, "overlap"),
        ({"mode": "hann"}, "mode"),
        ({"patch_size": (32, 32)}, "patch size"),
    ],
)
def test_bad_arguments(image, kwargs, message):
    args = {"patch_size": (32, 32, 16), **WINDOW, **kwargs}
    with pytest.raises(InputError, match=message):
        predict_volume(VoxelwiseNet(), image, **args)


def test_bad_image():
    with pytest.raises(InputError, match="3D"):
        predict_volume(VoxelwiseNet(), np.zeros((8, 8)), (8, 8, 8), **WINDOW)
    with pytest.raises(InputError, match="NaN"):
        predict_volume(VoxelwiseNet(), np.full((8, 8, 8), np.nan), (8, 8, 8), **WINDOW)


# --------------------------------------------------------------------------- equality of results


@pytest.mark.parametrize("layout", ["float32", "float64", "reversed", "fortran"])
def test_normalise_equals_torchio_bit_for_bit(layout):
    """normalise computes TorchIO's ZNormalization on one copy of the image (its memory peak, see
    augment.normalise); the values must stay exactly TorchIO's, whatever the layout."""
    rng = np.random.default_rng(3)
    image = rng.gamma(2.0, 50.0, (37, 29, 11))
    image = {
        "float32": image.astype(np.float32),
        "float64": image,
        "reversed": image[::-1, :, ::-1],
        "fortran": np.asfortranarray(image),
    }[layout]
    expected = tio.ZNormalization()(torch.from_numpy(np.asarray(image, np.float32)[None].copy()))[0].numpy()
    assert np.array_equal(normalise(image), expected)


def test_prediction_equals_monai_sliding_window_inference(image):
    """predict_volume is MONAI's Gaussian sliding windows on the z-normalised image, then
    a softmax: the same probabilities as calling MONAI directly."""
    torch.manual_seed(0)
    net = build_network("dynunet", 3, (32, 32, 16), None, {"filters": 4}, (0.8, 0.8, 3.0)).eval()
    image = np.concatenate([image, image + 10], axis=2)  # 14 slices: padded to the patch, then cropped
    probs = predict_volume(net, image, (32, 32, 16), overlap=0.5, mode="gaussian", sw_batch_size=3, precision="float32")
    x = torch.from_numpy(image.astype(np.float32))[None, None]
    x = (x - x.mean()) / x.std()
    with torch.no_grad():
        logits = sliding_window_inference(x, (32, 32, 16), 3, net, overlap=0.5, mode="gaussian", cval=float(x.min()))
    np.testing.assert_allclose(probs, torch.softmax(logits, dim=1)[0].numpy(), rtol=0, atol=1e-6)
