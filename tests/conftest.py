"""Shared fixtures: the tiny config and small random clips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsfnet.config import load_config

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"


@pytest.fixture
def tiny_config():
    """Return a loader: ``tiny_config(*overrides)`` -> Config of the tiny test model."""
    return lambda *overrides: load_config(TINY_CONFIG, list(overrides))


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)
