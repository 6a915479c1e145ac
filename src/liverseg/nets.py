"""The segmentation networks: MONAI's AHNet and DynUNet, and AHNet's 2D encoder.

Tensors are (B, C, H, W, D) with the anisotropic slice axis D last, as AHNet expects.

Besides the constructors:
- the exact AHNet patch-size rule (from patch_rules, torch-free since the workflow checks
  its config with it), checked here too, because a bad size otherwise fails deep inside
  the forward pass with a tensor-size mismatch;
- the nnU-Net-style DynUNet plan (kernels and strides from the spacing and patch);
- the 2D ResNet-50-layout encoder and its transfer into AHNet (AH-Net's recipe: a 2D
  encoder pretrained on 2.5D slices or ImageNet becomes the 3D network's encoder).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import torch
from monai.networks.nets import AHNet, DynUNet, ResNet
from torch import nn

from .errors import ConfigError, InputError
from .layers import use_window_layers
from .patch_rules import (
    DYNUNET_MIN_SIZE,
    check_ahnet_patch_size,
    check_psp_block_num,
    int_triple,
    is_positive_int,
    positive_ints,
)

RESNET_INPLANES = (64, 128, 256, 512)  # torchvision ResNet-50 widths (x4 after each bottleneck)
DYNUNET_MAX_FILTERS = 320  # nnU-Net's cap on the number of feature maps in 3D


# --------------------------------------------------------------------------- AHNet


def _check_layers(layers, key: str) -> tuple[int, int, int, int]:
    return positive_ints(layers, 4, key, "four positive integers (blocks in layer1..layer4)")


def ahnet(
    out_channels: int,
    layers: Sequence[int] = (3, 4, 6, 3),
    psp_block_num: int = 4,
    window_layers: bool = True,
) -> AHNet:
    """A 3D AHNet for one-channel images; (3, 4, 6, 3) is the ResNet-50 encoder of the paper.
    `window_layers`: its pooling and transposed convolutions replaced by layers.py's
    (faster CPU inference, training unchanged); False: MONAI's network as it is."""
    layers = _check_layers(layers, "ahnet.layers")
    psp_block_num = check_psp_block_num(psp_block_num, "ahnet.psp_block_num")
    net = AHNet(
        layers=layers,
        spatial_dims=3,
        in_channels=1,
        out_channels=out_channels,
        psp_block_num=psp_block_num,
        upsample_mode="transpose",  # deterministic, and the mode the size rule is for
        pretrained=False,  # MONAI's pretrained=True downloads torchvision weights
    )
    return use_window_layers(net) if window_layers else net


# ------------------------------------------------------------------------- DynUNet


def dynunet_plan(
    spacing: Sequence[float], patch_size: Sequence[int], key: str = "patch_size"
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net's anisotropic plan: (kernel sizes, strides) per DynUNet stage.

    Repeatedly, per axis: ratio = spacing / min(spacing); stride 2 where the ratio is
    <= 2 and the feature map is still >= 8, else 1; kernel 3 where the ratio is <= 2,
    else 1. As in nnU-Net (and MONAI's DynUNet tutorial), after each step the spacing of
    the downsampled axes doubles and their size halves, so a thick-slice axis joins the
    pooling once the in-plane resolution has coarsened to within a factor 2 of it. Stops
    when every stride is 1; strides get a leading [1, 1, 1] (the input stage) and kernels
    a final [3, 3, 3] (the bottleneck). DynUNet's upsample_kernel_size is strides[1:].
    Raises ConfigError naming `key` unless every axis of the patch is a multiple of the
    product of its strides.
    """
    size = int_triple(patch_size, key)
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ConfigError(f"{key}: the spacing {list(spacing)} must be three positive numbers (mm)")
    current_spacing = [float(s) for s in spacing]
    current_size = [float(n) for n in size]
    kernels: list[list[int]] = []
    strides: list[list[int]] = []
    while True:
        ratios = [s / min(current_spacing) for s in current_spacing]
        stride = [2 if r <= 2 and n >= DYNUNET_MIN_SIZE else 1 for r, n in zip(ratios, current_size)]
        if all(s == 1 for s in stride):
            break
        kernels.append([3 if r <= 2 else 1 for r in ratios])
        strides.append(stride)
        current_size = [n / s for n, s in zip(current_size, stride)]
        current_spacing = [sp * s for sp, s in zip(current_spacing, stride)]
    strides.insert(0, [1, 1, 1])
    kernels.append([3, 3, 3])
    for axis, n in enumerate(size):
        factor = math.prod(s[axis] for s in strides)
        if n % factor:
            raise ConfigError(
                f"{key} {list(size)}: axis {axis} ({n}) must be a multiple of {factor}, "
                f"the product of DynUNet's strides {[s[axis] for s in strides[1:]]} on that axis"
            )
    return kernels, strides


def _dynunet_filters(filters: int | Sequence[int] | None, n_stages: int, key: str) -> list[int] | None:
    """None (MONAI's default widths), a base width doubled per stage, or one width per stage."""
    if filters is None:
        return None
    if is_positive_int(filters):
        return [min(int(filters) * 2**i, DYNUNET_MAX_FILTERS) for i in range(n_stages)]
    if (
        isinstance(filters, Sequence)
        and not isinstance(filters, (str, bytes))
        and len(filters) == n_stages
        and all(is_positive_int(f) for f in filters)
    ):
        return [int(f) for f in filters]
    raise ConfigError(
        f"{key} {filters!r}: expected a positive base width or {n_stages} positive widths (one per stage of the plan)"
    )


def dynunet(
    out_channels: int,
    spacing: Sequence[float],
    patch_size: Sequence[int],
    filters: int | Sequence[int] | None = None,
    key: str = "patch_size",
) -> DynUNet:
    """A 3D DynUNet planned from `spacing` and `patch_size` (see dynunet_plan).

    `filters`: None for MONAI's widths (32, 64, ... capped at 320), an int base width
    (doubled per stage, capped at 320) or one width per stage; a small base makes a
    CPU-sized net.
    """
    kernels, strides = dynunet_plan(spacing, patch_size, key)
    return DynUNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=out_channels,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=_dynunet_filters(filters, len(strides), "dynunet.filters"),
    )


# ------------------------------------------------------------------- entry point


def build_network(
    network: str,
    out_channels: int,
    patch_size: Sequence[int],
    ahnet_cfg: Mapping | None,
    dynunet_cfg: Mapping | None,
    median_spacing: Sequence[float] | None,
    key: str = "model",
) -> nn.Module:
    """The network a model entry of the config names; training and inference both use it.

    `ahnet_cfg` is the config's `ahnet` section (layers, psp_block_num; other keys are
    ignored here), `dynunet_cfg` its `dynunet` section (filters) and `median_spacing`
    the cohort's median spacing, which DynUNet is planned for (the images are not
    resampled). The patch size is checked against the network's rule first.
    """
    check_patch_size(network, patch_size, ahnet_cfg, median_spacing, key)
    if network == "ahnet":
        cfg = dict(ahnet_cfg or {})
        return ahnet(out_channels, cfg.get("layers", (3, 4, 6, 3)), cfg.get("psp_block_num", 4))
    return dynunet(
        out_channels,
        median_spacing,
        patch_size,
        dict(dynunet_cfg or {}).get("filters"),
        f"{key}.patch_size",
    )


def check_patch_size(
    network: str,
    patch_size: Sequence[int],
    ahnet_cfg: Mapping | None,
    median_spacing: Sequence[float] | None,
    key: str = "model",
) -> None:
    """ConfigError naming `key` (the model's config entry) unless `network` can take
    `patch_size`: AHNet's rule, or DynUNet's plan for `median_spacing`."""
    patch_key = f"{key}.patch_size"
    if network == "ahnet":
        check_ahnet_patch_size(patch_size, dict(ahnet_cfg or {}).get("psp_block_num", 4), patch_key)
    elif network == "dynunet":
        if median_spacing is None:
            raise ConfigError(f"{key}: DynUNet needs the cohort's median spacing to plan its kernels and strides")
        dynunet_plan(median_spacing, patch_size, patch_key)
    else:
        raise ConfigError(f"{key}.network {network!r}: expected 'ahnet' or 'dynunet'")


# --------------------------------------------------------- 2D encoder and transfer


class ResNet2d(ResNet):
    """A 2D bottleneck ResNet in torchvision's ResNet-50 layout, without the classifier.

    Parameter names match torchvision's (conv1, bn1, layerN.M.convK/bnK, downsample.0/1),
    so an ImageNet state dict loads as is. AHNet.copy_from reads the first BatchNorm as
    `bn0`, hence the alias.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3)) -> None:
        layers = _check_layers(layers, "ahnet.layers")
        super().__init__(
            block="bottleneck",
            layers=list(layers),
            block_inplanes=list(RESNET_INPLANES),
            spatial_dims=2,
            n_input_channels=3,  # RGB for ImageNet, three adjacent slices for 2.5D
            conv1_t_size=7,
            conv1_t_stride=2,
            feed_forward=False,
            bias_downsample=False,  # torchvision's downsample convolutions have no bias
        )
        self.layers = layers

    @property
    def bn0(self) -> nn.Module:
        return self.bn1

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of layer1..layer4 (strides 4, 8, 16, 32), for a segmentation head."""
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        out = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out


def resnet2d(layers: Sequence[int] = (3, 4, 6, 3)) -> ResNet2d:
    return ResNet2d(layers)


def load_imagenet_resnet50(path: str | os.PathLike, key: str = "ahnet.imagenet_weights") -> ResNet2d:
    """A ResNet2d holding torchvision's ResNet-50 ImageNet state dict, read from `path`
    once its SHA-256 is checked (imagenet.verify_weights: one message naming how to get
    the file when it is missing or another). Nothing is downloaded (imagenet.fetch_weights does)."""
    from .imagenet import verify_weights

    found = verify_weights(path, key=key)
    try:
        state = torch.load(found, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{found}: cannot read a PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise InputError(f"{found}: expected a ResNet-50 state dict, found {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    net = ResNet2d((3, 4, 6, 3))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{found}: not a torchvision ResNet-50 state dict ({exc})") from exc
    return net


def _convs_and_norms(module: nn.Module, conv_type: type, norm_type: type) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (conv_type, norm_type))]


def transfer_encoder(ahnet_model: AHNet, net2d: ResNet2d) -> None:
    """Copy a 2D encoder into AHNet's 3D encoder (AHNet.copy_from), checking they match.

    The 64x3x7x7 first kernel becomes 64x1x7x7x3: the three RGB (or 2.5D slice) input
    channels become the three taps along the slice axis. Every convolution and
    BatchNorm of layer1..layer4 is copied with a size-1 slice axis. Unlike copy_from,
    which zips the module lists and silently stops at the shorter, a 2D net of another
    depth is refused; and the BatchNorm running statistics are copied with the affine
    parameters, so the transferred encoder normalises as the 2D one did. `net2d` is moved
    to the AHNet's device.
    """
    if ahnet_model.spatial_dims != 3 or ahnet_model.conv1.in_channels != 1:
        raise ConfigError("transfer_encoder: only a 3D AHNet with one input channel takes a 2D encoder")
    if tuple(net2d.conv1.weight.shape) != (64, 3, 7, 7):
        shape = list(net2d.conv1.weight.shape)
        raise ConfigError(f"transfer_encoder: the 2D encoder's first kernel is {shape}, expected [64, 3, 7, 7]")
    pairs = [(net2d.bn0, ahnet_model.bn0)]
    for i in range(1, 5):
        name = f"layer{i}"
        mods2d = _convs_and_norms(getattr(net2d, name), nn.Conv2d, nn.BatchNorm2d)
        mods3d = _convs_and_norms(getattr(ahnet_model, name), nn.Conv3d, nn.BatchNorm3d)
        if len(mods2d) != len(mods3d):
            raise ConfigError(
                f"transfer_encoder: {name} of the 2D encoder has {len(mods2d)} convolutions and norms, "
                f"the AHNet's {len(mods3d)}: build both with the same ahnet.layers"
            )
        for m2, m3 in zip(mods2d, mods3d):
            w2, w3 = m2.weight.shape, m3.weight.shape
            if tuple(w3) not in (tuple(w2), tuple(w2) + (1,)):
                raise ConfigError(f"transfer_encoder: {name} shapes differ ({list(w2)} vs {list(w3)})")
        pairs += [(m2, m3) for m2, m3 in zip(mods2d, mods3d) if isinstance(m2, nn.BatchNorm2d)]
    net2d.to(ahnet_model.conv1.weight.device)  # copy_from assigns conv1's data, which would move it
    ahnet_model.copy_from(net2d)
    with torch.no_grad():
        for bn2, bn3 in pairs:
            bn3.running_mean.copy_(bn2.running_mean)
            bn3.running_var.copy_(bn2.running_var)
            bn3.num_batches_tracked.copy_(bn2.num_batches_tracked)
