"""TorchIO subjects and the training / evaluation pipelines (paper §2.9).

A subject is read through `liverseg.io.load_nifti`, so a patch sees the same canonical
(RAS+, slice axis last) array as every other stage, and a missing or corrupt file stops
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

"Contrast" is nnU-Net's contrast augmentation (`RandomContrast` below): intensities are
scaled about their mean by a factor drawn from [0.75, 1.25] and clipped to the original
range. TorchIO has no transform of that kind; `RandomGamma` changes the gamma only.
"""

from __future__ import annotations

import functools
import os
from typing import Mapping, Sequence

import numpy as np
import torch
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from .errors import ConfigError, InputError
from .io import load_nifti

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
    return {"multiclass": ["background", "liver", "tumor"], "liver": ["background", "liver"],
            "tumor": ["background", "tumor"]}[task]


def task_target(label: np.ndarray, task: str) -> np.ndarray:
    """The ATLAS label map {0, 1, 2} as the class indices `task` is trained on."""
    _check_task(task)
    label = np.rint(np.asarray(label)).astype(np.int16)
    if task == "liver":
        label = label > 0
    elif task == "tumor":
        label = label == 2
    return label.astype(np.uint8)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """TorchIO reader: the canonical image as (1, H, W, D) float32 and its affine."""
    img = load_nifti(path)
    return np.ascontiguousarray(img.get_fdata(dtype=np.float32)[np.newaxis]), img.affine


def read_label(path: str | os.PathLike, task: str) -> tuple[np.ndarray, np.ndarray]:
    """TorchIO reader: the canonical label map as the task's class indices."""
    img = load_nifti(path)
    label = img.get_fdata(dtype=np.float32)  # decoded (and cached) by load_nifti already
    if label.ndim != 3:
        raise InputError(f"{path}: label map must be 3D, got shape {label.shape}")
    return np.ascontiguousarray(task_target(label, task)[np.newaxis]), img.affine


def make_subject(record: Mapping, task: str) -> tio.Subject:
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


def _cast_labels() -> tio.Transform:
    return tio.Lambda(_as_label_dtype, types_to_apply=[tio.LABEL])


def evaluation_transform() -> tio.Compose:
    """Normalisation only: what every image goes through before the network."""
    return tio.Compose([tio.ZNormalization(), _cast_labels()])


def normalise(image: np.ndarray) -> np.ndarray:
    """`image` (H, W, D) through `evaluation_transform`, as float32: the same values, bit
    for bit, as TorchIO's ZNormalization (mean and unbiased std of all voxels, then an
    in-place subtraction and division), computed on one copy of the image.

    The transform itself peaks at about 13 image-sized buffers (its whole-image mask is
    indexed through int64 coordinates): 2.3 GiB for a 512 x 512 x 136 volume, the
    largest allocation of whole-volume inference.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise InputError(f"image must be 3D (H, W, D), got shape {image.shape}")
    if not np.isfinite(image).all():
        raise InputError("image holds NaN or infinite values")
    if float(image.max()) == float(image.min()):
        raise InputError("image has a constant intensity: it cannot be z-normalised")
    out = torch.from_numpy(np.array(image, order="C"))  # C order: the voxel order TorchIO reduces in
    mean, std = out.mean(), out.std()
    out -= mean
    out /= std
    return out.numpy()


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
            subject = tio.Pad(flat, padding_mode="minimum", include=scalars)(subject)
        if labels:
            subject = tio.Pad(flat, padding_mode=0, include=labels)(subject)
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


def training_transform(aug_cfg: Mapping, patch_size: Sequence[int]) -> tio.Compose:
    """The training pipeline; `aug_cfg` maps each augmentation in AUGMENTATIONS to the
    probability of applying it (a key left out is off)."""
    p = _probabilities(aug_cfg)
    steps: list[tio.Transform] = []
    if p["bias_field"]:
        steps.append(tio.RandomBiasField(coefficients=BIAS_COEFFICIENTS, p=p["bias_field"]))
    if p["gamma"]:
        steps.append(tio.RandomGamma(log_gamma=LOG_GAMMA, p=p["gamma"]))
    steps.append(tio.ZNormalization())
    if p["contrast"]:
        steps.append(RandomContrast(CONTRAST_FACTOR, p=p["contrast"]))
    if p["noise"]:
        steps.append(tio.RandomNoise(std=NOISE_STD, p=p["noise"]))
    steps.append(EnsureMinimumShape(patch_size))
    if p["flip"]:
        steps.append(tio.RandomFlip(axes=FLIP_AXES, flip_probability=0.5, p=p["flip"]))
    if p["affine"]:
        steps.append(tio.RandomAffine(scales=SCALES, degrees=ROTATION_DEGREES, default_pad_value="minimum",
                                      image_interpolation="linear", label_interpolation="nearest",
                                      p=p["affine"]))
    steps.append(_cast_labels())
    return tio.Compose(steps)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"model task: unknown task {task!r}; known: {list(TASKS)}")
