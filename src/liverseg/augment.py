"""TorchIO subjects and the training / evaluation pipelines (paper §2.9).

A subject is read through `liverseg.io.load_nifti`, so a patch sees the same canonical
(RAS+, slice axis last) array as every other step, and a missing or corrupt file stops
with an InputError naming it. The label map is turned into the model's target when it is
read: multi-class {0 background, 1 liver, 2 tumour}, whole liver (label > 0) or tumour
(label == 2).

Pipelines:
- evaluation: z-normalisation of the whole image (mean 0, std 1 over all voxels).
- training: bias field and gamma on the raw intensities (both assume a non-negative,
  multiplicative intensity scale), then the same z-normalisation, then contrast and
  noise in z units, padding to the patch size, in-plane flips and a mostly in-plane
  affine; the label map follows every spatial transform with nearest-neighbour
  interpolation (TorchIO does so for a LabelMap), and ends as uint8 so that patches
  of every subject collate (TorchIO pitfall: mixed integer dtypes break collation).

The transforms are TorchIO's, but for two replacements that give TorchIO's values to the
bit at a fraction of the cost on ATLAS-size volumes (`ZNormalise`, `RandomBiasField`), and
the training pipeline copies each subject once instead of at every step
(`training_transform`).

"Contrast" is nnU-Net's contrast augmentation (`RandomContrast` below): intensities are
scaled about their mean by a factor drawn from [0.75, 1.25] and clipped to the original
range. TorchIO has no transform of that kind; `RandomGamma` changes the gamma only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from .errors import ConfigError, InputError
from .io import c_ordered, load_nifti

TASKS = ("multiclass", "liver", "tumor")
AUGMENTATIONS = ("flip", "affine", "contrast", "gamma", "bias_field", "noise")
LABEL_DTYPE = torch.uint8

# Magnitudes of the augmentations (the paper gives none; TorchIO's defaults where
# sensible). Rotation is mostly about the slice axis: the slices are 2-4.6 mm thick, so a
# large tilt would interpolate between slices far apart.
FLIP_AXES = (0, 1)
ROTATION_DEGREES = (3.0, 3.0, 15.0)
SCALES = (0.9, 1.1)
CONTRAST_FACTOR = (0.75, 1.25)
LOG_GAMMA = (-0.3, 0.3)
BIAS_COEFFICIENTS = 0.5
NOISE_STD = (0.0, 0.1)


def class_names(task: str) -> list[str]:
    """Names of the model's output channels for `task`, background first."""
    _check_task(task)
    return {
        "multiclass": ["background", "liver", "tumor"],
        "liver": ["background", "liver"],
        "tumor": ["background", "tumor"],
    }[task]


def task_target(label: np.ndarray, task: str) -> np.ndarray:
    """The ATLAS label map {0, 1, 2} (integral values of any dtype, as the cohort check
    admits) as the uint8 class indices `task` is trained on."""
    _check_task(task)
    label = np.asarray(label)
    if label.dtype.kind == "f":
        label = np.rint(label)
    if task == "liver":
        return (label > 0).view(np.uint8)
    if task == "tumor":
        return (label == 2).view(np.uint8)
    return label.astype(np.uint8)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """TorchIO reader: the canonical image as (1, H, W, D) float32 and its affine."""
    img = load_nifti(path)
    return c_ordered(img.get_fdata(dtype=np.float32))[np.newaxis], img.affine


def read_label(path: str | os.PathLike, task: str) -> tuple[np.ndarray, np.ndarray]:
    """TorchIO reader: the canonical label map as the task's class indices."""
    img = load_nifti(path)
    label = img.get_fdata(dtype=np.float32)  # decoded (and cached) by load_nifti already
    if label.ndim != 3:
        raise InputError(f"{path}: label map must be 3D, got shape {label.shape}")
    return c_ordered(task_target(label, task))[np.newaxis], img.affine


def torchio_subject(record: Mapping, task: str) -> tio.Subject:
    """A lazily loaded TorchIO subject from a cohort record (keys subject, image, label)."""
    _check_task(task)
    for key in ("subject", "image", "label"):
        if key not in record:
            raise InputError(f"cohort record {dict(record)!r}: missing key '{key}'")
    for key in ("image", "label"):
        if not os.path.isfile(record[key]):
            raise InputError(f"{record[key]}: file not found ({key} of subject {record['subject']})")
    return tio.Subject(
        image=tio.ScalarImage(record["image"], reader=read_image),
        label=tio.LabelMap(record["label"], reader=functools.partial(read_label, task=task)),
        subject=str(record["subject"]),
    )


def _as_label_dtype(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.round().to(LABEL_DTYPE) if tensor.is_floating_point() else tensor.to(LABEL_DTYPE)


def _cast_labels(**kwargs) -> tio.Transform:
    return tio.Lambda(_as_label_dtype, types_to_apply=[tio.LABEL], **kwargs)


def evaluation_transform() -> tio.Compose:
    """Normalisation only: what every image goes through before the network."""
    return tio.Compose([ZNormalise(), _cast_labels()])


def normalise(image: np.ndarray) -> np.ndarray:
    """`image` (H, W, D) through `evaluation_transform`, as float32: the same values, bit
    for bit, as TorchIO's ZNormalization, computed on one copy of the image.

    TorchIO's transform peaks at about 13 image-sized buffers (its whole-image mask is
    indexed through int64 coordinates): 2.3 GiB for a 512 x 512 x 136 volume, the
    largest allocation of whole-volume inference.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise InputError(f"image must be 3D (H, W, D), got shape {image.shape}")
    if not np.isfinite(image).all():
        raise InputError("image holds NaN or infinite values")
    out = torch.from_numpy(np.array(image) if image.flags.c_contiguous else c_ordered(image))  # a copy, C order
    _standardise(out, "image")
    return out.numpy()


def _standardise(tensor: torch.Tensor, name: str) -> None:
    """ZNormalization's arithmetic, in place on a C-ordered float32 tensor: mean and
    unbiased std of all voxels (reduced in C order, as TorchIO's flattening mask does),
    then subtraction and division. A constant image (`name` in the error) has no std."""
    if float(tensor.max()) == float(tensor.min()):
        raise InputError(f"{name}: constant intensity, it cannot be z-normalised")
    mean, std = tensor.mean(), tensor.std()
    tensor -= mean
    tensor /= std


class ZNormalise(tio.IntensityTransform):
    """TorchIO's ZNormalization over all voxels, equal to it bit for bit, on one copy of
    each image instead of the dozen buffers of TorchIO's masked indexing."""

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for image in self.get_images(subject):
            data = image.data.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
            _standardise(data, str(image.path or "image"))
            image.set_data(data)
        return subject


def bias_field(shape: Sequence[int], order: int, coefficients: Sequence[float]) -> np.ndarray:
    """exp of TorchIO's polynomial bias field on a grid of `shape`, equal to
    `tio.BiasField.generate_bias_field` bit for bit, at a fraction of its cost.

    Each term c * x^i * y^j * z^k is separable: its in-plane factor is computed once on an
    (H, W) plane and multiplied by the slice factor block by block (1 MB blocks stay in
    cache), with every voxel's operations in TorchIO's order (float64 products and sums,
    then exp and float32). TorchIO evaluates every power and product on whole float64
    volumes (docs/performance.md).
    """
    axes = []
    for half in np.asarray(shape, dtype=float) / 2:
        coordinate = np.arange(-half, half) + 0.5
        if coordinate.max() > 0:
            coordinate /= coordinate.max()
        axes.append(coordinate)
    x, y, z = axes
    terms, i = [], 0
    for x_order in range(order + 1):
        for y_order in range(order + 1 - x_order):
            for z_order in range(order + 1 - (x_order + y_order)):
                plane = (coefficients[i] * x**x_order)[:, None] * (y**y_order)[None, :]
                terms.append((plane, z**z_order))
                i += 1
    rows = max(1, (1 << 20) // (8 * len(y) * len(z)))
    field = np.empty(tuple(int(s) for s in shape), dtype=np.float32)
    total, term = np.empty((rows, len(y), len(z))), np.empty((rows, len(y), len(z)))
    for start in range(0, len(x), rows):
        stop = min(start + rows, len(x))
        block_total, block_term = total[: stop - start], term[: stop - start]
        block_total.fill(0.0)
        for plane, depth in terms:
            np.multiply(plane[start:stop, :, None], depth, out=block_term)
            block_total += block_term
        np.exp(block_total, out=block_total)
        field[start:stop] = block_total
    return field


class _SeparableBiasField(tio.BiasField):
    @staticmethod
    def generate_bias_field(data, order: int, coefficients: Sequence[float]) -> np.ndarray:
        return bias_field(data.shape[1:], order, coefficients)


class RandomBiasField(tio.RandomBiasField):
    """TorchIO's RandomBiasField: the same random draws and the same field to the bit,
    computed by `bias_field`."""

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        names = list(self.get_images_dict(subject))
        if not names:
            return subject
        coefficients = {name: self.get_params(self.order, self.coefficients_range) for name in names}
        return _SeparableBiasField(
            coefficients=coefficients,
            order=dict.fromkeys(names, self.order),
            **self._get_base_args(),
        )(subject)


def symmetric_padding(shape: Sequence[int], minimum: Sequence[int]) -> list[tuple[int, int]]:
    """Per axis (before, after) padding that brings `shape` up to at least `minimum`."""
    pads = []
    for size, want in zip(shape, minimum):
        extra = max(int(want) - int(size), 0)
        pads.append((extra // 2, extra - extra // 2))
    return pads


class EnsureMinimumShape(tio.Transform):
    """Pad every axis shorter than `shape`, symmetrically: images with their minimum
    (the darkest value, i.e. background), label maps with 0. Longer axes are untouched,
    so a patch sampler can draw `shape`-sized patches from any volume (ATLAS volumes of
    44 slices are shorter than a 64-slice patch)."""

    def __init__(self, shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(int(s) for s in shape)
        self.args_names = ["shape"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        pads = symmetric_padding(subject.spatial_shape, self.shape)
        if not any(any(p) for p in pads):
            return subject
        flat = tuple(p for pair in pads for p in pair)
        images = subject.get_images_dict(intensity_only=False)
        labels = [name for name, image in images.items() if image.type == tio.LABEL]
        scalars = [name for name in images if name not in labels]
        if scalars:
            subject = tio.Pad(flat, padding_mode="minimum", include=scalars, copy=self.copy)(subject)
        if labels:
            subject = tio.Pad(flat, padding_mode=0, include=labels, copy=self.copy)(subject)
        return subject


class RandomContrast(RandomTransform, tio.IntensityTransform):
    """nnU-Net's contrast augmentation: (x - mean) * f + mean, f ~ U(factor), clipped to
    the image's original range."""

    def __init__(self, factor: tuple[float, float] = CONTRAST_FACTOR, **kwargs):
        super().__init__(**kwargs)
        self.factor_range = self._parse_range(factor, "factor", min_constraint=0)
        self.args_names = ["factor_range"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for image in self.get_images(subject):
            factor = self.sample_uniform(*self.factor_range)
            data = image.data.float()
            mean = data.mean()
            image.set_data(((data - mean) * factor + mean).clamp(data.min(), data.max()))
        return subject


def _probabilities(aug_cfg: Mapping) -> dict[str, float]:
    unknown = sorted(set(aug_cfg) - set(AUGMENTATIONS))
    if unknown:
        raise ConfigError(f"augmentation: unknown key(s) {unknown}; known: {list(AUGMENTATIONS)}")
    probs = {}
    for key in AUGMENTATIONS:
        value = aug_cfg.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"augmentation.{key}: a probability in [0, 1] is required, got {value!r}")
        probs[key] = float(value)
    return probs


def training_transform(aug_cfg: Mapping, patch_size: Sequence[int], torchio_reference: bool = False) -> tio.Compose:
    """The training pipeline; `aug_cfg` maps each augmentation in AUGMENTATIONS to the
    probability of applying it (a key left out is off).

    The pipeline copies a subject once, when it starts, and its steps then work on that
    copy: TorchIO's transforms deep-copy the whole subject by default, each of them and the
    deterministic transform each random one applies (180 MB at 512 x 512 x 136, up to 15
    times a subject). `torchio_reference=True` builds the same pipeline from TorchIO's own
    transforms (ZNormalization, RandomBiasField) with their default copies: the reference
    that the tests and the benchmark compare it with, equal for the same torch seed.
    """
    p = _probabilities(aug_cfg)
    step = {} if torchio_reference else {"copy": False}
    bias_field_transform = tio.RandomBiasField if torchio_reference else RandomBiasField
    steps: list[tio.Transform] = []
    if p["bias_field"]:
        steps.append(bias_field_transform(coefficients=BIAS_COEFFICIENTS, p=p["bias_field"], **step))
    if p["gamma"]:
        steps.append(tio.RandomGamma(log_gamma=LOG_GAMMA, p=p["gamma"], **step))
    steps.append(tio.ZNormalization() if torchio_reference else ZNormalise(**step))
    if p["contrast"]:
        steps.append(RandomContrast(CONTRAST_FACTOR, p=p["contrast"], **step))
    if p["noise"]:
        steps.append(tio.RandomNoise(std=NOISE_STD, p=p["noise"], **step))
    steps.append(EnsureMinimumShape(patch_size, **step))
    if p["flip"]:
        steps.append(tio.RandomFlip(axes=FLIP_AXES, flip_probability=0.5, p=p["flip"], **step))
    if p["affine"]:
        steps.append(
            tio.RandomAffine(
                scales=SCALES,
                degrees=ROTATION_DEGREES,
                default_pad_value="minimum",
                image_interpolation="linear",
                label_interpolation="nearest",
                p=p["affine"],
                **step,
            )
        )
    steps.append(_cast_labels(**step))
    return tio.Compose(steps)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"model task: unknown task {task!r}; known: {list(TASKS)}")
