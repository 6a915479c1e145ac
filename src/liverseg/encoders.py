"""The 2D encoder an AHNet starts training from, as `ahnet.encoder` names it.

- "imagenet": torchvision's ResNet-50 ImageNet weights, the paper's "pre-trained 2D
  convolutional encoder" (the file from the local rule imagenet_weights; imagenet.py);
- "slices": AH-Net's own recipe offline, the ResNet pretrained on the fold's 2.5D
  slices (pretrain.py);
- "none": random weights.
Either file goes into AHNet's 3D encoder by nets.transfer_encoder. Only "none" starts
from random weights: a setting without its file, or a file with "none", is an error.
"""

from __future__ import annotations

import os

from .errors import ConfigError

__all__ = ["ENCODERS", "check_encoder_source", "load_2d_encoder"]

# setting -> the file it needs, as messages name it
ENCODERS = {
    "imagenet": "the ImageNet ResNet-50 weights (rule imagenet_weights)",
    "slices": "the fold's 2.5D-pretrained encoder (rule pretrain_encoder)",
    "none": None,
}


def check_encoder_source(setting, path: str | os.PathLike | None) -> None:
    """ConfigError unless `path` is given exactly when `setting` needs a file."""
    if setting not in ENCODERS:
        raise ConfigError(f"ahnet.encoder {setting!r}: expected one of {', '.join(ENCODERS)}")
    if setting == "none" and path is not None:
        raise ConfigError(f"ahnet.encoder 'none' starts from random weights, yet the encoder file {path} was given")
    if setting != "none" and path is None:
        raise ConfigError(
            f"ahnet.encoder {setting!r}: no encoder file given ({ENCODERS[setting]}); "
            "only ahnet.encoder 'none' starts from random weights"
        )


def load_2d_encoder(setting: str, path: str | os.PathLike):
    """The 2D ResNet (nets.ResNet2d) that `setting` names, read from `path`."""
    check_encoder_source(setting, path)
    if setting == "none":
        raise ConfigError("ahnet.encoder 'none' has no encoder to load")
    if setting == "imagenet":
        from .nets import load_imagenet_resnet50

        return load_imagenet_resnet50(path)
    from .pretrain import load_encoder

    return load_encoder(path)
