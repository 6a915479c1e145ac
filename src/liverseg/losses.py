"""The training loss: margin-based label smoothing (MbLS).

Murugesan et al. (MedIA 2023) after Liu et al. (CVPR 2022): cross-entropy plus a hinge
on the logit distances, L = CE + alpha * mean over voxels and classes of
max(0, max_j l_j - l_k - margin). The penalty only acts once a logit falls more than
`margin` below the winning one, which keeps the network from growing ever more
confident logits and so improves calibration, which the lesion-wise uncertainty needs.

Optionally (`dice_weight` > 0) a soft Dice term over the foreground classes is added, the
variant of the MbLS segmentation experiments: with a small liver in a large patch,
cross-entropy alone starts by predicting background everywhere, and the Dice term makes
short trainings (the CPU demo) learn the organ within a few dozen iterations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MarginLabelSmoothing(nn.Module):
    """MbLS loss for logits (B, C, *spatial) and class indices (B, 1, *spatial) or (B, *spatial).

    Works for any number of classes C >= 2 (3 for the multi-class model, 2 for each
    binary model). Defaults m = 10, alpha = 0.1 are the reference implementation's.
    """

    def __init__(self, margin: float = 10.0, alpha: float = 0.1, dice_weight: float = 0.0) -> None:
        super().__init__()
        if margin < 0 or alpha < 0 or dice_weight < 0:
            raise ValueError(
                f"MarginLabelSmoothing: margin ({margin}), alpha ({alpha}) and dice_weight ({dice_weight}) must be >= 0"
            )
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.dice_weight = float(dice_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim < 2 or logits.shape[1] < 2:
            raise ValueError(f"MarginLabelSmoothing: logits {tuple(logits.shape)} must be (B, C>=2, *spatial)")
        if target.ndim == logits.ndim and target.shape[1] == 1:
            target = target[:, 0]
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(
                f"MarginLabelSmoothing: target {tuple(target.shape)} does not match logits {tuple(logits.shape)}"
            )
        # Label maps often arrive as floats (TorchIO, collation): class indices either way.
        target = target.round().long() if target.is_floating_point() else target.long()
        ce = F.cross_entropy(logits, target)
        distances = logits.max(dim=1, keepdim=True).values - logits
        penalty = F.relu(distances - self.margin).mean()
        loss = ce + self.alpha * penalty
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target)
        return loss

    def extra_repr(self) -> str:
        return f"margin={self.margin}, alpha={self.alpha}, dice_weight={self.dice_weight}"


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - mean soft Dice of the foreground classes, over the whole batch (nnU-Net's batch Dice)."""
    probabilities = torch.softmax(logits, dim=1)[:, 1:]
    one_hot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].to(probabilities.dtype)
    axes = [0] + list(range(2, logits.ndim))
    intersection = (probabilities * one_hot).sum(axes)
    total = probabilities.sum(axes) + one_hot.sum(axes)
    return 1 - ((2 * intersection + eps) / (total + eps)).mean()
