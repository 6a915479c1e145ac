"""The window layers: PyTorch's values without a gradient (from a faster path), PyTorch's
own layers with one, and liverseg's AHNet equal to MONAI's."""

import copy

import pytest
import torch
from torch import nn

from liverseg.layers import WindowConvTranspose3d, WindowMaxPool3d, use_window_layers
from liverseg.nets import ahnet


def _relu_input(*shape, seed=0):
    # after a ReLU: many exact ties (zeros), where an index-based maximum could differ
    return torch.relu(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("kernel", [(1, 1, 2), (2, 2, 2), (8, 8, 1), (1, 1, 1), 2])
@pytest.mark.parametrize("shape", [(2, 3, 16, 16, 8), (1, 2, 17, 19, 9)])  # odd sides: partial windows dropped
def test_window_max_pool_equals_max_pool_without_grad(kernel, shape, monkeypatch):
    x = _relu_input(*shape)
    x[0, 0, 0, 0, 0] = float("nan")  # max_pool3d propagates NaN, so must the pairwise maxima
    expected = nn.MaxPool3d(kernel, kernel)(x)
    # the fast path never reaches PyTorch's pooling
    monkeypatch.setattr(torch.nn.functional, "max_pool3d", lambda *a, **k: pytest.fail("PyTorch's pooling ran"))
    with torch.inference_mode():
        got = WindowMaxPool3d(kernel, kernel)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)  # equal to the bit


def test_window_max_pool_with_grad_is_pytorch_s():
    x = _relu_input(2, 3, 8, 8, 8).requires_grad_()
    y = x.detach().clone().requires_grad_()
    WindowMaxPool3d((2, 2, 2), 2)(x).pow(2).sum().backward()
    nn.MaxPool3d((2, 2, 2), 2)(y).pow(2).sum().backward()
    # ties: PyTorch's gradient goes to the first maximum of a window; pairwise maxima would split it
    assert torch.equal(x.grad, y.grad)


def test_overlapping_max_pool_stays_pytorch_s():
    x = _relu_input(1, 2, 9, 9, 9)
    with torch.no_grad():
        assert torch.equal(WindowMaxPool3d(3, 2, padding=1)(x), nn.MaxPool3d(3, 2, padding=1)(x))


def _transposed_pair(in_ch, out_ch, kernel, stride, bias=True, **kwargs):
    torch.manual_seed(1)
    plain = nn.ConvTranspose3d(in_ch, out_ch, kernel, stride, bias=bias, **kwargs)
    window = use_window_layers(nn.Sequential(copy.deepcopy(plain)))[0]
    assert isinstance(window, WindowConvTranspose3d)
    return plain, window


@pytest.mark.parametrize("kernel", [(2, 2, 2), (1, 1, 2), (4, 2, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_window_transposed_convolution_equals_pytorch_s(kernel, bias, monkeypatch):
    plain, window = _transposed_pair(16, 8, kernel, kernel, bias=bias)
    x = torch.randn(2, 16, 5, 3, 4)
    expected = plain(x).detach()
    monkeypatch.setattr(
        torch.nn.functional,
        "conv_transpose3d",
        lambda *a, **k: pytest.fail("PyTorch's transposed convolution ran"),
    )
    with torch.no_grad():
        got = window(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_window_transposed_convolution_with_grad_or_overlap_is_pytorch_s():
    plain, window = _transposed_pair(4, 3, 3, 2, padding=1)  # overlapping windows
    x = torch.randn(1, 4, 5, 5, 5)
    with torch.no_grad():
        assert torch.equal(window(x), plain(x))
    plain, window = _transposed_pair(4, 3, 2, 2)
    window(x).sum().backward()
    plain(x).sum().backward()
    assert torch.equal(window.weight.grad, plain.weight.grad)


def test_liverseg_ahnet_is_monai_s_trained_identically_and_predicting_equal():
    torch.manual_seed(0)
    ours = ahnet(3, (1, 1, 1, 1), 1)
    monai = ahnet(3, (1, 1, 1, 1), 1, window_layers=False)
    assert not any(isinstance(m, (WindowMaxPool3d, WindowConvTranspose3d)) for m in monai.modules())
    monai.load_state_dict(ours.state_dict())  # the same parameter names: checkpoints are MONAI's
    assert any(isinstance(m, WindowMaxPool3d) for m in ours.modules())
    assert any(isinstance(m, WindowConvTranspose3d) for m in ours.modules())

    x = torch.randn(2, 1, 64, 32, 32)
    ours.train(), monai.train()
    a, b = ours(x), monai(x)
    assert torch.equal(a, b)  # training: PyTorch's own layers, to the bit
    a.square().mean().backward(), b.square().mean().backward()
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(ours.parameters(), monai.parameters()))

    ours.eval(), monai.eval()
    with torch.inference_mode():
        a, b = ours(x), monai(x)
    # inference: equal up to float rounding (an untrained net's logits reach thousands)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))
    assert (a.argmax(1) != b.argmax(1)).float().mean() < 1e-4
