"""The labelled held-out set that the tests of the benchmark scripts share."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsfnet.data.synth import generate_synthetic_vid


@pytest.fixture(scope="session")
def held_out(tmp_path_factory) -> Path:
    """Two synthetic videos of six labelled frames (the held-out split, seed 2020)."""
    return generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "vid", 0, seed=2020, num_val_videos=2,
                                  num_frames=6, num_det_images=0)
