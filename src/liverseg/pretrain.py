"""AH-Net's own encoder recipe, offline: pretrain the 2D ResNet on 2.5D slices.

AH-Net (Liu et al., MICCAI 2018) starts its 3D encoder from a 2D network. Instead of
ImageNet weights (a download), the 2D ResNet is trained here on the fold's training
subjects: each input is three adjacent slices as three channels (the channels that
become the three taps of AHNet's 7x7x3 first kernel), the target the centre slice's
labels (0 background, 1 liver, 2 tumour), through a light FCN head that is thrown away
afterwards. Only the ResNet is saved; nets.transfer_encoder then copies it into AHNet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .devices import setup_torch
from .errors import ConfigError, InputError
from .io import atomic_path, load_nifti
from .nets import RESNET_INPLANES, ResNet2d, resnet2d

N_CLASSES = 3
FOREGROUND_SHARE = 0.5  # share of samples centred on a labelled voxel: the liver is a small part of a slice
BOTTLENECK_EXPANSION = 4


class SliceHead(nn.Module):
    """FCN-style head: a 1x1 convolution per ResNet stage, upsampled to the input and summed."""

    def __init__(self, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.scores = nn.ModuleList(nn.Conv2d(c * BOTTLENECK_EXPANSION, n_classes, 1) for c in RESNET_INPLANES)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return sum(
            F.interpolate(score(f), size=size, mode="bilinear", align_corners=False)
            for score, f in zip(self.scores, features)
        )


class _Volume:
    """One subject in memory: z-normalised image (float16 to halve memory) and labels."""

    def __init__(self, subject: dict, crop: int) -> None:
        for field in ("image", "label"):
            if field not in subject:
                raise InputError(f"subject {subject.get('subject', '?')}: no '{field}' path in the cohort row")
        image = load_nifti(subject["image"]).get_fdata(dtype=np.float32)
        label = np.rint(load_nifti(subject["label"]).get_fdata(dtype=np.float32))
        if image.ndim != 3 or image.shape != label.shape:
            raise InputError(
                f"{subject['label']}: shape {label.shape} does not match the image {subject['image']} {image.shape}"
            )
        if label.min() < 0 or label.max() >= N_CLASSES:
            raise InputError(f"{subject['label']}: labels must be 0, 1 or 2, found {sorted(np.unique(label))[:10]}")
        std = float(image.std())
        image = (image - float(image.mean())) / (std if std > 0 else 1.0)
        # Pad in-plane to at least the crop: background intensity for the image, 0 for labels.
        pad = [(0, max(0, crop - n)) for n in image.shape[:2]] + [(0, 0)]
        self.image = np.pad(image, pad, constant_values=float(image.min())).astype(np.float16)
        self.label = np.pad(label.astype(np.uint8), pad)
        self.foreground_slices = np.flatnonzero(self.label.any(axis=(0, 1)))

    def sample(self, rng: np.random.Generator, crop: int) -> tuple[np.ndarray, np.ndarray]:
        """Three adjacent slices (edges repeated) and the centre slice's labels, cropped."""
        h, w, d = self.image.shape
        centred = self.foreground_slices.size > 0 and rng.random() < FOREGROUND_SHARE
        if centred:
            k = int(rng.choice(self.foreground_slices))
            ys, xs = np.nonzero(self.label[:, :, k])
            j = int(rng.integers(ys.size))
            y0 = int(np.clip(ys[j] - crop // 2, 0, h - crop))
            x0 = int(np.clip(xs[j] - crop // 2, 0, w - crop))
        else:
            k = int(rng.integers(d))
            y0, x0 = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        taps = np.clip([k - 1, k, k + 1], 0, d - 1)
        window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        x = np.moveaxis(self.image[window + (taps,)], -1, 0).astype(np.float32)
        return x, self.label[window + (k,)].astype(np.int64)


def _check_positive(name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"pretrain.{name} {value!r}: expected an integer >= {minimum}")


def pretrain_encoder(
    subjects: Sequence[dict],
    out_path: str | os.PathLike,
    *,
    layers: Sequence[int],
    epochs: int,
    slices_per_epoch: int,
    batch_size: int,
    lr: float,
    seed: int,
    crop: int,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> None:
    """Train resnet2d(layers) with a light head on 2.5D slices and save the ResNet.

    Each epoch draws `slices_per_epoch` random crops (crop x crop, half of them centred
    on a labelled voxel) from the subjects and takes Adam steps on the cross-entropy.
    Writes, atomically, a dict {"state_dict", "layers", "history" (mean loss per epoch),
    "crop", "seed"}. Deterministic from `seed` on the CPU.

    Args:
        subjects: cohort rows with "image" and "label" paths.
        out_path: the encoder file to write.
        layers: ResNet blocks per stage (`ahnet.layers`).
        epochs, slices_per_epoch, batch_size, lr, crop: the config's `pretrain` section
            (workflow/schemas/config.schema.yaml holds their defaults).
        seed: seeds the crops and the initial weights.
        device: cpu, cuda or cuda:N (None: CUDA when available).
        threads: torch's CPU threads (None: every CPU this process may use).

    Raises:
        InputError: no subjects, or a subject's files cannot be read or do not match.
        ConfigError: a setting out of range, named by its `pretrain.` key.
    """
    if not subjects:
        raise InputError("pretrain_encoder: no training subjects")
    for name, value, minimum in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("slices_per_epoch", slices_per_epoch, batch_size),
        ("crop", crop, 32),  # ResNet's five halvings need 32 pixels
    ):
        _check_positive(name, value, minimum)
    if not lr > 0:
        raise ConfigError(f"pretrain.lr {lr!r}: expected a positive number")
    device = setup_torch(device, threads)

    volumes = [_Volume(s, crop) for s in subjects]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net2d = resnet2d(layers).to(device)
    head = SliceHead().to(device)
    optimizer = torch.optim.Adam([*net2d.parameters(), *head.parameters()], lr=lr, fused=True)
    net2d.train()
    head.train()

    history: list[float] = []
    steps = slices_per_epoch // batch_size
    for _ in range(epochs):
        total = 0.0
        for _ in range(steps):
            pairs = [volumes[rng.integers(len(volumes))].sample(rng, crop) for _ in range(batch_size)]
            x = torch.from_numpy(np.stack([p[0] for p in pairs])).to(device)
            y = torch.from_numpy(np.stack([p[1] for p in pairs])).to(device)
            logits = head(net2d.features(x), size=(crop, crop))
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        history.append(total / steps)

    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in net2d.state_dict().items()},
        "layers": [int(n) for n in layers],
        "history": history,
        "crop": crop,
        "seed": seed,
    }
    with atomic_path(out_path) as tmp:
        torch.save(payload, tmp)


def load_encoder(path: str | os.PathLike) -> ResNet2d:
    """The pretrained 2D ResNet saved by pretrain_encoder, ready for nets.transfer_encoder."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: pretrained encoder not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        net = resnet2d(payload["layers"])
        net.load_state_dict(payload["state_dict"], strict=True)
    except Exception as exc:  # unpickling, a missing key or a shape mismatch
        raise InputError(f"{path}: not an encoder written by pretrain_encoder ({type(exc).__name__}: {exc})") from exc
    return net
