"""Drop-in replacements for PyTorch layers inside MONAI's networks: the same function,
computed faster on the CPU when no gradient is recorded (validation, inference).

PyTorch's CPU pooling and transposed convolutions are slow, though AHNet's windows do not
overlap (kernel = stride; docs/performance.md has the measurements):
- max_pool3d also computes the index of every maximum it returns; with power-of-two
  windows (1x1x2 between the encoder's stages, 2x2x2 after the stem, 8x8x1 in the PSP
  block) the same maxima are pairwise maxima of strided views, equal to the bit;
- a transposed convolution whose kernel equals its stride writes each output voxel from
  one input voxel: one matrix product, which reads the weights once instead of reordering
  them at every call; equal up to float rounding (summation order).
When a gradient is recorded (training) each layer is PyTorch's own, so training is
unchanged to the bit.
"""

from __future__ import annotations

import torch
from torch import nn


def _fast_path(x: torch.Tensor, *parameters: torch.Tensor | None) -> bool:
    """On the CPU, and with nothing to differentiate."""
    recorded = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *parameters))
    return x.device.type == "cpu" and x.dim() == 5 and not recorded


class WindowMaxPool3d(nn.MaxPool3d):
    """nn.MaxPool3d; non-overlapping power-of-two windows as pairwise maxima without grad."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = _triple(self.kernel_size)
        plain = (
            _triple(self.stride) != kernel
            or _triple(self.padding) != (0, 0, 0)
            or _triple(self.dilation) != (1, 1, 1)
            or self.ceil_mode
            or self.return_indices
        )
        if plain or not _fast_path(x) or not all(k & (k - 1) == 0 and k <= n for k, n in zip(kernel, x.shape[2:])):
            return super().forward(x)
        for axis, side in zip(range(2, 5), kernel):
            x = x.narrow(axis, 0, x.shape[axis] // side * side)  # the whole windows only, as max_pool3d
            while side > 1:
                pairs = x.unflatten(axis, (-1, 2))
                x = torch.maximum(pairs.select(axis + 1, 0), pairs.select(axis + 1, 1))
                side //= 2
        return x


class WindowConvTranspose3d(nn.ConvTranspose3d):
    """nn.ConvTranspose3d; with kernel = stride (no padding, groups, dilation) one matrix
    product without grad."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        plain = (
            _triple(self.kernel_size) != _triple(self.stride)
            or _triple(self.padding) != (0, 0, 0)
            or _triple(self.output_padding) != (0, 0, 0)
            or _triple(self.dilation) != (1, 1, 1)
            or self.groups != 1
            or self.padding_mode != "zeros"
            or output_size is not None
        )
        if plain or not _fast_path(x, self.weight, self.bias):
            return super().forward(x, output_size)
        n, _, d, h, w = x.shape
        out_channels, (kd, kh, kw) = self.out_channels, _triple(self.kernel_size)
        # (voxels, in) @ (in, out * kernel): each voxel's kd x kh x kw output block
        y = x.permute(0, 2, 3, 4, 1).reshape(-1, self.in_channels) @ self.weight.reshape(self.in_channels, -1)
        y = y.view(n, d, h, w, out_channels, kd, kh, kw).permute(0, 4, 1, 5, 2, 6, 3, 7)
        y = y.reshape(n, out_channels, d * kd, h * kh, w * kw)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)


def use_window_layers(net: nn.Module) -> nn.Module:
    """Replace, in place, every nn.MaxPool3d and nn.ConvTranspose3d of `net` by its window
    twin above, with the same settings and parameters (state dicts are unchanged).
    Returns `net`."""
    for module in list(net.modules()):
        for name, child in module.named_children():
            if type(child) is nn.MaxPool3d:
                twin = WindowMaxPool3d(
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    return_indices=child.return_indices,
                    ceil_mode=child.ceil_mode,
                )
            elif type(child) is nn.ConvTranspose3d:
                twin = WindowConvTranspose3d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.output_padding,
                    child.groups,
                    child.bias is not None,
                    child.dilation,
                    child.padding_mode,
                    device=child.weight.device,
                    dtype=child.weight.dtype,
                )
                twin.load_state_dict(child.state_dict())
            else:
                continue
            setattr(module, name, twin)
    return net


def _triple(value) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3
