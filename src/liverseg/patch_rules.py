"""AHNet's and DynUNet's patch-size rules and the integer checks they use, without torch.

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
DYNUNET_MIN_SIZE = 8  # nnU-Net: stop halving an axis once its feature map is below 8


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


def check_ahnet_patch_size(patch_size: Sequence[int], psp_block_num: int, key: str = "patch_size") -> None:
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


def dynunet_max_halvings(n: int) -> int:
    """How often DynUNet's plan can halve an axis of `n` voxels: while its feature map is
    >= DYNUNET_MIN_SIZE. It does so when the axis is the finest by far (the plan halves
    only axes within a factor 2 of the finest spacing), so any spacing needs no more."""
    halvings = 0
    while n / 2**halvings >= DYNUNET_MIN_SIZE:
        halvings += 1
    return halvings


def check_dynunet_patch_size(patch_size: Sequence[int], key: str = "patch_size") -> None:
    """Raise ConfigError naming `key` unless DynUNet can take `patch_size` whatever the spacing.

    The plan (nets.dynunet_plan) follows the median spacing of each fold's training set,
    unknown when the workflow starts and different from fold to fold; a patch whose every
    axis is a multiple of 2**dynunet_max_halvings fits every plan, one that is not fails
    for some spacing. The exact plan is checked again when a model is built.
    """
    size = int_triple(patch_size, key)
    for axis, n in enumerate(size):
        factor = 2 ** dynunet_max_halvings(n)
        if n % factor:
            raise ConfigError(
                f"{key} {list(size)}: axis {axis} ({n}) must be a multiple of {factor}: DynUNet may halve it "
                f"{factor.bit_length() - 1} times, depending on the cohort's spacing "
                f"(e.g. {_multiples_near(n, factor)})"
            )


def _multiples_near(n: int, factor: int) -> str:
    """The nearest valid sizes below and above `n`, for the message."""
    below, above = n // factor * factor, (n // factor + 1) * factor
    return f"{below} or {above}" if below >= DYNUNET_MIN_SIZE else f"{above}"
