"""An exponential moving average (EMA) of a network's weights, validated and kept in their place.

Trained on batches of two patches, an AHNet's weights swing from step to step: its
validation liver Dice moves by 0.1-0.35 between epochs to the last one, at learning
rates down to 1e-4 (docs/reproduction.md). The average of the recent steps' weights
smooths that swing out. Where `training.ema_decay` is above 0, training validates the
average after each validated epoch (its BatchNorm statistics re-estimated as the trained
network's would be) and model.pt keeps the average's best epoch; the optimiser still
steps the trained network.

The decay warms up as in TensorFlow's ExponentialMovingAverage: after n updates it is
min(decay, (1 + n) / (10 + n)), so early in a short training the average follows the
fast-moving weights closely instead of dragging their random start along, and later it
spans about the last tenth of the steps, up to 1 / (1 - decay) steps.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The EMA of `net`'s parameters, as a second network (`averaged`) of the same shape.

    Its buffers (BatchNorm's running statistics) are the trained network's, copied at
    each update: an average of running statistics would describe no set of weights."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"WeightAverage: decay {decay} must lie strictly between 0 and 1")
        self.decay = float(decay)
        self.updates = 0
        self.averaged = copy.deepcopy(net)
        self.averaged.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses (warmed up, see the module's docstring)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """Move the average towards `net`'s current parameters; copy its buffers."""
        averaged = list(self.averaged.parameters())
        current = [p.detach() for p in net.parameters()]
        torch._foreach_lerp_(averaged, current, 1.0 - self.current_decay())
        for mine, theirs in zip(self.averaged.buffers(), net.buffers(), strict=True):
            mine.copy_(theirs)
        self.updates += 1

    def state_dict(self, weights: Mapping[str, torch.Tensor] | None = None) -> dict:
        """What a checkpoint stores to resume the average; `weights`: a copy of the
        averaged network's state dict already at hand (shared when saved)."""
        return {"updates": self.updates, "weights": weights if weights is not None else self.averaged.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        self.averaged.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
