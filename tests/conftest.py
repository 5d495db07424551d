"""Shared fixtures: the tiny config and small random clips; the ``cuda`` marker's skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dsfnet.config import load_config

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"

#: ``1``: run the ``cuda`` tests on the CPU when there is no GPU (what ``benchmarks/gpu_check.sh --dry-run`` does,
#: so that a mistake in a test shows before the GPU's few minutes are spent)
CUDA_TESTS_ON_CPU = "DSFNET_CUDA_TESTS_ON_CPU"


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``cuda`` on a machine without CUDA (unless ``DSFNET_CUDA_TESTS_ON_CPU=1``)."""
    if torch.cuda.is_available() or os.environ.get(CUDA_TESTS_ON_CPU) == "1":
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU (benchmarks/gpu_check.sh; {CUDA_TESTS_ON_CPU}=1 runs it on "
                                   "the CPU)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def gpu() -> torch.device:
    """The device of a ``cuda`` test: the GPU, or the CPU in a dry run (``DSFNET_CUDA_TESTS_ON_CPU=1``)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def tiny_config():
    """Return a loader: ``tiny_config(*overrides)`` -> Config of the tiny test model."""
    return lambda *overrides: load_config(TINY_CONFIG, list(overrides))


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)
