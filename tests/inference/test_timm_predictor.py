"""The timm paper configs' frame variant: ``cached`` == ``exact`` bit for bit on random weights (the frame fusion
reads the support frames' raw conv4 maps, so caching them changes nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dsfnet.config import load_config
from dsfnet.models.build import build_model

from inferencehelpers import randomise_fusion
from test_predictor import random_frames, run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
#: the backbone as configured (random weights, so nothing frozen), the heads at the tiny test model's size
SMALL = ("model.variant=frame", "model.backbone.norm=batch_norm", "model.backbone.freeze_stem_and_conv2=false",
         "model.rpn.anchor_sizes=[16,32,64]", "model.rpn.pre_nms_top_n_test=300", "model.rpn.post_nms_top_n_test=30",
         "model.roi.reduced_channels=16", "model.roi.representation_size=64", "data.min_size=64", "data.max_size=80")


@pytest.mark.parametrize("name", ["vid_convnext_t_dsfnet.yaml", "vid_regnety040_dsfnet.yaml"])
def test_cached_equals_exact_for_frame_variant(name):
    config = load_config(CONFIGS / name, list(SMALL))
    torch.manual_seed(0)
    model = randomise_fusion(build_model(config.model))
    frames = random_frames(6)
    cached = run(model, config, frames, num_frames=3, sampling="stride", stride=2, mode="cached")
    exact = run(model, config, frames, num_frames=3, sampling="stride", stride=2, mode="exact")
    assert sum(len(result.scores) for result in cached) > 0
    for a, b in zip(cached, exact, strict=True):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores), a.index
        assert np.array_equal(a.labels, b.labels), a.index
