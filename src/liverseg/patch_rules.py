"""AHNet's patch-size rules and the integer checks they use, without torch.

They are checked when the workflow reads its config (config.check_config) and used by
the bounding-box analysis (boxes) to recommend sizes, so this module must stay free of
torch and MONAI: importing them costs seconds at every Snakemake start. nets.py builds
the networks and checks their sizes with these rules.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from .errors import ConfigError

AHNET_SLICE_MULTIPLE = 32  # five halvings of the slice axis in AHNet's encoder
AHNET_MIN_LARGEST_SIDE = 64  # the deepest feature map must hold more than one voxel


def ahnet_inplane_multiple(psp_block_num: int) -> int:
    """The number that H and W must be multiples of, for AHNet in transpose mode.

    The encoder halves H and W five times and the decoder adds each upsampled map to the
    encoder's map of the same level, so every level must be even: a multiple of 32. The
    PSP block pools the half-resolution map by 2**(i+3) for i < psp_block_num and
    transposes it back, which only restores the size when H/2 is a multiple of
    2**(psp_block_num+2). MONAI's docstring says "divisible by 2**(psp_block_num+3) and
    >= 32", which is not enough for psp_block_num <= 1 (H = 48 fails); this is the rule
    found by running every H in 8..256 through MONAI 1.6.1's AHNet for each psp_block_num.
    """
    return 2 ** max(5, psp_block_num + 3)


def is_positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def positive_ints(value, count: int, key: str, expected: str) -> tuple[int, ...]:
    """`value` as `count` positive integers; else ConfigError '<key> <value>: expected <expected>'."""
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != count
        or not all(is_positive_int(v) for v in value)
    ):
        raise ConfigError(f"{key} {value!r}: expected {expected}")
    return tuple(int(v) for v in value)


def int_triple(value, key: str) -> tuple[int, int, int]:
    """A patch size: three positive integers (H, W, slices)."""
    return positive_ints(value, 3, key, "three positive integers (H, W, slices)")


def check_psp_block_num(psp_block_num, key: str) -> int:
    if not (isinstance(psp_block_num, numbers.Integral) and not isinstance(psp_block_num, bool)) or not (
        0 <= psp_block_num <= 4
    ):
        raise ConfigError(f"{key} {psp_block_num!r}: AHNet's psp_block_num must be an integer in 0..4")
    return int(psp_block_num)


def check_ahnet_patch_size(
    patch_size: Sequence[int], psp_block_num: int, key: str = "models.<name>.patch_size"
) -> None:
    """Raise ConfigError naming `key` when AHNet cannot take `patch_size` (H, W, slices).

    The rules (transpose upsampling, verified on MONAI 1.6.1): H and W multiples of
    ahnet_inplane_multiple(psp_block_num); the slice axis a multiple of 32; at least one
    side >= 64, else the 1x1x1 deepest feature map makes BatchNorm fail in training at
    batch size 1.
    """
    psp_block_num = check_psp_block_num(psp_block_num, "ahnet.psp_block_num")
    size = int_triple(patch_size, key)
    shown = f"{key} {list(size)}"
    multiple = ahnet_inplane_multiple(psp_block_num)
    for axis, n in zip(("H", "W"), size[:2]):
        if n % multiple:
            raise ConfigError(
                f"{shown}: {axis} ({n}) must be a multiple of {multiple} with psp_block_num {psp_block_num} "
                f"(AHNet rule: multiple of 2**max(5, psp_block_num + 3))"
            )
    if size[2] % AHNET_SLICE_MULTIPLE:
        raise ConfigError(
            f"{shown}: the slice axis ({size[2]}) must be a multiple of {AHNET_SLICE_MULTIPLE} (AHNet rule)"
        )
    if max(size) < AHNET_MIN_LARGEST_SIDE:
        raise ConfigError(f"{shown}: at least one side must be >= {AHNET_MIN_LARGEST_SIDE} (AHNet rule)")
