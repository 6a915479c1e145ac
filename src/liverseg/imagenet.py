"""The ImageNet weights of AHNet's 2D encoder: torchvision's ResNet-50 IMAGENET1K_V1.

The paper's AHNet has "a pre-trained 2D convolutional encoder": MONAI's
AHNet(pretrained=True) loads torchvision's ResNet-50 ImageNet weights by downloading them
inside the network's constructor, which a GPU node without internet cannot do. Here the
download is a step of its own, the workflow's local rule `imagenet_weights`, run once per
project on the login node or workstation before any training job: the file is fetched,
or copied from `ahnet.imagenet_weights` (a copy made elsewhere, for offline clusters);
either way its SHA-256 must start with the prefix torchvision's file name carries, and it
is cached at CACHE. Training jobs only read the cached file (nets.load_imagenet_resnet50
checks it again); nothing that trains downloads.

Torch-free and light: the Snakefile imports it at parse time, and the local rule runs it
on a login node.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from .errors import ConfigError, InputError

__all__ = [
    "CACHE",
    "FILE_NAME",
    "SHA256_PREFIX",
    "URL",
    "fetch_weights",
    "how_to_get",
    "sha256_of",
    "verify_weights",
]

URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"  # torchvision ResNet50_Weights.IMAGENET1K_V1
FILE_NAME = URL.rsplit("/", 1)[-1]
SHA256_PREFIX = "0676ba61"  # torchvision names its files after the first hex digits of their SHA-256
CACHE = f"resources/imagenet/{FILE_NAME}"  # relative to the workflow's working directory
KEY = "ahnet.imagenet_weights"
CHUNK = 1 << 20


def how_to_get(cache: str | os.PathLike = CACHE) -> str:
    """The two ways to the weights, for every message that says they are missing or wrong."""
    return (
        f"Get them one of two ways: run the workflow once where {URL} can be reached (its local rule "
        f"imagenet_weights saves the file as {cache}), or download that file on any machine with internet "
        f"and set {KEY} to its path (or copy it to {cache})"
    )


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(
    path: str | os.PathLike,
    sha256_prefix: str | None = None,
    key: str = KEY,
    name: str | None = None,
) -> Path:
    """`path` as a Path once its SHA-256 starts with `sha256_prefix` (default SHA256_PREFIX).

    Raises ConfigError (`key` and the path) if the file is missing, InputError (`name`,
    default the path) if its checksum differs (a partial download or another file); both
    say how to get the file.
    """
    prefix = sha256_prefix or SHA256_PREFIX
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key} {path}: file not found. {how_to_get()}")
    actual = sha256_of(path)
    if not actual.startswith(prefix):
        raise InputError(
            f"{name or path}: SHA-256 {actual[: len(prefix)]}..., expected {prefix}... (torchvision's ResNet-50 "
            f"IMAGENET1K_V1, {FILE_NAME}): a partial download or another file. {how_to_get()}"
        )
    return path


def fetch_weights(
    out_path: str | os.PathLike,
    source: str | os.PathLike | None = None,
    url: str = URL,
    sha256_prefix: str | None = None,
    timeout: float = 60,
) -> None:
    """Write the verified weights to `out_path` (atomically): copied from `source` when
    given, else downloaded from `url`. Raises InputError naming both ways to the weights
    when the download fails or the checksum differs."""
    from .io import atomic_path

    with atomic_path(out_path) as tmp:
        if source is not None:
            verify_weights(source, sha256_prefix)
            shutil.copyfile(source, tmp)
            return
        try:
            with (
                urllib.request.urlopen(url, timeout=timeout) as response,
                open(tmp, "wb") as handle,
            ):
                shutil.copyfileobj(response, handle, CHUNK)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise InputError(f"cannot download the ImageNet weights from {url} ({reason}). {how_to_get()}") from None
        verify_weights(tmp, sha256_prefix, name=f"the download of {url}")
