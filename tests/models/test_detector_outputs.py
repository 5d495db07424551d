"""The detector's losses, gradients, attention statistics and detections are those recorded in
``data/detector_outputs.pt`` (see ``detector_outputs.py``: a refactoring must not change them).

The comparison allows float32 rounding, not more: CPUs of other models (AVX-512 or not, another oneDNN kernel)
sum in another order, which moves the last bits of a loss and, in a gradient sum that cancels to ~1e-8, its
leading ones. Labels, counts and keys must match exactly; a weight moved by 1e-3 must still be caught."""

from __future__ import annotations

import math

import pytest
import torch

from dsfnet.config import VARIANTS
from tests.models.detector_outputs import RECORDED, build, inference, training_step


# rounding of float32 sums taken in another order; gradient sums near zero need the absolute part
RTOL, ATOL = 1e-4, 1e-5


def _assert_matches(actual, expected, where: str) -> None:
    """The same nested dicts / lists of tensors and floats: structure, dtypes and integers exact, floats to
    RTOL / ATOL."""
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), where
        for key in expected:
            _assert_matches(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected)):
            _assert_matches(a, e, f"{where}[{index}]")
    elif isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL, msg=where)
    elif isinstance(expected, float):
        assert math.isclose(actual, expected, rel_tol=RTOL, abs_tol=ATOL), where
    else:
        assert actual == expected, where


@pytest.fixture(scope="module")
def recorded() -> dict:
    return torch.load(RECORDED)


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_step_is_unchanged(recorded, variant):
    _assert_matches(training_step(build(variant)), recorded[variant]["train"], f"{variant}.train")


@pytest.mark.parametrize("variant", VARIANTS)
def test_inference_is_unchanged(recorded, variant):
    _assert_matches(inference(build(variant)), recorded[variant]["inference"], f"{variant}.inference")


def test_a_changed_weight_is_detected(recorded):
    model = build("dsfnet")
    with torch.no_grad():
        model.instance_fusions[1].gamma.bias[0] += 1e-3
    with pytest.raises(AssertionError):
        _assert_matches(inference(model), recorded["dsfnet"]["inference"], "dsfnet.inference")
