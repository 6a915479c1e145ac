"""The patch sampler of the training queue: TorchIO's LabelSampler, the same patches,
with the costly part moved into the queue's workers.

TorchIO's queue draws patches in the main process, between two training steps, however
many workers load and augment the subjects: whatever the sampler costs per subject, the
model waits for it. `tio.LabelSampler` builds its distribution of patch centres through
a dozen whole-volume float32 and float64 buffers (a float copy of the label map, boolean
masks written through int64 indices, padding, a float64 copy, its flattened copy, a
normalised copy and their cumulative sum): 3 s for a 512 x 512 x 136 volume, every
subject, in the main process.

Here the distribution is computed where the subject is augmented (`PatchSubjectsDataset`,
in the queue's workers) and travels with it, summarised: every voxel's probability is one
of a few numbers (its class's weight over the class's voxel count), so one float64 buffer
written through a lookup table, normalised in place with TorchIO's own reductions and
accumulated in place is TorchIO's cumulative distribution to the bit; of it only every
`block`-th value is kept (70 kB for a 512 x 512 x 136 volume). A draw then finds its block
among those and re-accumulates only that block from the label map, starting from the
block's exact predecessor: the same sequential sums, so the same voxel as TorchIO's
search of the whole distribution for the same random number. The random numbers are
drawn where TorchIO draws them, one `torch.rand(1)` per patch in the main process: the
same seed gives the same patches, with or without workers.

One deliberate difference, on by default (`shift=True`): TorchIO centres a patch only on
voxels where the whole patch fits, so a voxel within half a patch of a border is never a
centre, and its class weight never brings it into a patch. On the synthetic reproduction's
volumes (27 slices, padded to a 32-slice patch) that left one admissible slice: 4 of 60
tumour-model patches were drawn on a tumour voxel instead of 4 in 5 (docs/reproduction.md).
With `shift`, as nnU-Net does, the voxel is drawn anywhere in the volume with TorchIO's
weights, and the patch is then moved the least that puts it inside the volume, so it
still holds the drawn voxel. `shift=False` is TorchIO's sampler to the bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchio as tio
from torchio.constants import MIN_FLOAT_32

from .errors import InputError

CENTRES = "patch_centres"  # the subject's key the distribution travels under, worker to main process
BLOCK = 4096  # voxels per kept value of the cumulative distribution: a draw re-accumulates one block


@dataclass(frozen=True)
class CentreDistribution:
    """TorchIO's cumulative distribution of patch centres over a label map, as every
    `block`-th value of it (C order) and what re-accumulating a block needs."""

    shape: tuple[int, int, int]
    box: tuple[tuple[int, int], ...]  # per axis, the voxels [low, high) a patch can be centred on
    shift: bool  # draws over the whole volume, the centre then moved into `box` (else drawn in it)
    probabilities: np.ndarray  # per label value, each voxel's probability (float64, normalised)
    block_ends: np.ndarray  # the cumulative distribution at the last voxel of each block
    block: int
    patch: tuple[int, int, int]
    weights: tuple[tuple[int, float], ...]

    @classmethod
    def of(
        cls,
        label: np.ndarray,
        patch: Sequence[int],
        weights: Mapping[int, float],
        block: int = BLOCK,
        name: str = "label map",
        shift: bool = True,
    ) -> CentreDistribution:
        """The distribution of `tio.LabelSampler(patch, label_probabilities=weights)` on
        the integer label map `label` (H, W, D), over the whole volume with `shift` (the
        module's docstring); `name` names it in errors."""
        shape = tuple(int(s) for s in label.shape)
        patch_size = np.asarray(patch, dtype=int)
        if np.any(patch_size > np.array(shape)):
            raise InputError(f"{name}: patch size {tuple(patch_size)} larger than the label map {shape}")
        # Patch centres can lie where a whole patch fits: TorchIO's crop and padding.
        box = tuple((int(lo), int(size - hi)) for lo, hi, size in zip(patch_size // 2, (patch_size - 1) // 2, shape))
        region = tuple(slice(0, n) if shift else slice(lo, hi) for n, (lo, hi) in zip(shape, box))
        inside = label[region]
        table = _voxel_probabilities(np.bincount(inside.ravel(), minlength=256), weights)
        cdf = np.zeros(shape)
        np.take(table, inside, out=cdf[region])
        total = cdf.sum()
        if total == 0:
            where = "in it" if shift else f"where a patch of {tuple(patch_size)} can be centred"
            raise InputError(
                f"{name}: no voxel of the sampled classes {sorted(k for k, v in weights.items() if v)} {where}"
            )
        # TorchIO normalises twice (process_probability_map, then the CDF's own
        # normalisation): the same two reductions in the same order, in place.
        cdf /= total
        second_total = cdf.sum()
        cdf /= second_total
        flat = cdf.reshape(-1)
        np.cumsum(flat, out=flat)
        ends = flat[block - 1 :: block]
        if flat.size % block:
            ends = np.append(ends, flat[-1])
        return cls(
            shape=shape,
            box=box,
            shift=shift,
            probabilities=table / total / second_total,
            block_ends=ends.copy(),
            block=block,
            **_settings(patch_size, weights),
        )

    def centre(self, label: np.ndarray, uniform: float) -> tuple[int, int, int]:
        """The voxel TorchIO's inverse transform sampling picks for the random number
        `uniform` (a `torch.rand(1)` draw) on this distribution of `label`; with `shift`,
        moved the least into the box of centres whose patch fits (it still holds the voxel)."""
        target = max(MIN_FLOAT_32, uniform) * self.block_ends[-1]
        block = int(np.searchsorted(self.block_ends, target))
        start = block * self.block
        coordinates = np.unravel_index(np.arange(start, min(start + self.block, int(np.prod(self.shape)))), self.shape)
        values = self.probabilities[label[coordinates]]
        if not self.shift:
            inside = np.logical_and.reduce([(c >= lo) & (c < hi) for c, (lo, hi) in zip(coordinates, self.box)])
            values = np.where(inside, values, 0.0)
        before = self.block_ends[block - 1] if block else 0.0
        cdf = np.cumsum(np.concatenate(([before], values)))[1:]  # the whole distribution's sums, this block
        voxel = np.unravel_index(start + int(np.searchsorted(cdf, target)), self.shape)
        return tuple(int(min(max(i, lo), hi - 1)) for i, (lo, hi) in zip(voxel, self.box))


class LabelSampler(tio.LabelSampler):
    """`tio.LabelSampler(patch_size, label_name, label_probabilities)` for a one-channel
    integer label map, patches moved inside the volume where TorchIO leaves a border
    unsampled (`shift`, the module's docstring); with shift=False equal to TorchIO's patch
    for patch under the same torch seed. It takes the distribution a
    `PatchSubjectsDataset` attached to the subject, or computes it."""

    def __init__(self, patch_size, label_name: str, label_probabilities: Mapping[int, float], shift: bool = True):
        super().__init__(patch_size, label_name=label_name, label_probabilities=dict(label_probabilities))
        self.shift = bool(shift)

    def distribution(self, subject: tio.Subject, block: int = BLOCK) -> CentreDistribution:
        label_image = self.get_probability_map_image(subject)
        name = str(label_image.path or self.probability_map_name)
        data = label_image.data
        if data.shape[0] != 1 or data.is_floating_point():
            raise InputError(
                f"{name}: the patch sampler needs a one-channel integer label map, got {tuple(data.shape)} {data.dtype}"
            )
        return CentreDistribution.of(
            data[0].numpy(), self.patch_size, self.label_probabilities_dict, block, name, shift=self.shift
        )

    def _generate_patches(self, subject: tio.Subject, num_patches: int | None = None) -> Iterator[tio.Subject]:
        centres = self._attached(subject) or self.distribution(subject)
        label = self.get_probability_map_image(subject).data[0].numpy()
        left = num_patches if num_patches is not None else True
        while left:
            # TorchIO's draw (WeightedSampler): one torch.rand(1) per patch.
            centre = np.array(centres.centre(label, torch.rand(1).item()))
            yield self.extract_patch(subject, tuple(int(i) for i in centre - self.patch_size // 2))
            if num_patches is not None:
                left -= 1

    def _attached(self, subject: tio.Subject) -> CentreDistribution | None:
        """The distribution the dataset attached, taken off the subject (patches must not
        carry it: they are collated into batches); None if absent or for another setup."""
        centres = subject.pop(CENTRES, None)
        subject.__dict__.pop(CENTRES, None)
        settings = _settings(self.patch_size, self.label_probabilities_dict)
        if (
            centres is None
            or (centres.patch, centres.weights, centres.shift) != (settings["patch"], settings["weights"], self.shift)
            or centres.shape != subject.spatial_shape
        ):
            return None
        return centres


class PatchSubjectsDataset(tio.SubjectsDataset):
    """A SubjectsDataset whose subjects carry their distribution of patch centres for
    `sampler`, computed where the subject is loaded and augmented (the queue's workers)."""

    def __init__(self, subjects: Sequence[tio.Subject], transform: tio.Transform, sampler: LabelSampler):
        super().__init__(list(subjects), transform=transform)
        self.sampler = sampler

    def __getitem__(self, index: int) -> tio.Subject:
        subject = super().__getitem__(index)
        subject[CENTRES] = self.sampler.distribution(subject)
        subject.update_attributes()
        return subject


def _settings(patch: Sequence[int], weights: Mapping[int, float]) -> dict:
    """What a distribution was computed for, as comparable tuples of Python numbers."""
    return {
        "patch": tuple(int(p) for p in patch),
        "weights": tuple((int(k), float(v)) for k, v in weights.items()),
    }


def _voxel_probabilities(counts: np.ndarray, weights: Mapping[int, float]) -> np.ndarray:
    """Per label value, each voxel's probability before normalisation: TorchIO's float32
    arithmetic (weights normalised over the dict, divided by the class's voxel count)."""
    weight = torch.Tensor(list(weights.values()))
    normalised = weight / weight.sum()
    table = np.zeros(len(counts), dtype=np.float32)
    for value, probability in zip(weights, normalised):
        count = int(counts[int(value)]) if 0 <= int(value) < len(counts) else 0
        if count:
            table[int(value)] = float(probability / torch.tensor(count))
    return table.astype(np.float64)
