"""The precision torch computes in (`training.precision`, `inference.precision`)."""

from __future__ import annotations

import pytest
import torch

from liverseg.config import schema_choices
from liverseg.devices import PRECISIONS, autocast_dtype, autocast_for, native_bfloat16
from liverseg.errors import InputError

CPU = torch.device("cpu")


def test_training_and_inference_take_the_same_precisions():
    assert schema_choices("training.precision") == schema_choices("inference.precision") == PRECISIONS
    assert "auto" in PRECISIONS and "float32" in PRECISIONS


def test_auto_is_bfloat16_on_a_cpu_only_where_it_is_native():
    assert autocast_dtype(CPU, "auto") == (torch.bfloat16 if native_bfloat16() else None)
    assert autocast_dtype(CPU, "float32") is None
    assert autocast_dtype(CPU, "bfloat16") == torch.bfloat16


def test_auto_is_float16_on_cuda_and_float32_turns_it_off():
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    assert autocast_dtype(cuda, "auto") == torch.float16
    assert autocast_dtype(cuda, "bfloat16") == torch.bfloat16
    assert autocast_dtype(cuda, "float32") is None


def test_autocast_computes_a_convolution_in_the_precision_asked():
    conv = torch.nn.Conv3d(1, 2, 3)
    x = torch.randn(1, 1, 8, 8, 8)
    with autocast_for(CPU, "bfloat16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast_for(CPU, "float32"):
        assert conv(x).dtype == torch.float32


def test_an_unknown_precision_names_the_choices():
    with pytest.raises(InputError, match="precision 'half'.*auto"):
        autocast_dtype(CPU, "half")
