"""The timm paper-recipe configs build and train a few iterations (random weights, small frames)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsfnet.config import load_config
from dsfnet.engine.trainer import train

from enginehelpers import FakeClips, collate

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
#: config -> (conv4, conv5) channels
TIMM_CONFIGS = {"vid_convnext_t_dsfnet.yaml": (384, 768), "vid_regnety040_dsfnet.yaml": (512, 1088)}
#: random weights: nothing may be frozen (frozen BatchNorm without ImageNet statistics is the identity); the
#: backbone as configured, the heads and sampling at the tiny test model's size (the paper-size heads took minutes)
SMALL = ("model.backbone.norm=batch_norm", "model.backbone.freeze_stem_and_conv2=false", "data.min_size=96",
         "model.rpn.anchor_sizes=[16,32,64]", "model.rpn.pre_nms_top_n_train=300", "model.rpn.post_nms_top_n_train=30",
         "model.rpn.batch_size_per_image=64", "model.roi.reduced_channels=16", "model.roi.representation_size=64",
         "model.roi.batch_size_per_image=32", "model.instance_fusion.num_heads=4", "model.instance_fusion.key_dim=32",
         "model.instance_fusion.support_proposals=30", "model.num_classes=3",
         "data.max_size=128", "data.num_workers=0", "train.iterations=2", "train.amp=false",
         "train.accumulation_steps=1", "train.log_interval=1", "train.checkpoint_interval=2")


@pytest.mark.parametrize("name", TIMM_CONFIGS)
def test_paper_config_trains_a_few_iterations(tmp_path, name):
    config = load_config(CONFIGS / name, list(SMALL))
    torch.manual_seed(0)
    result = train(config, tmp_path / "run", device="cpu", dataset=FakeClips(2, height=96, width=128),
                   collate_fn=collate, progress=False)
    assert result.finished and result.iteration == 2
    backbone = result.model.backbone
    assert (backbone.conv4_channels, backbone.conv5_channels) == TIMM_CONFIGS[name]
    # the config normalises frames as the model's ImageNet weights were trained
    assert (backbone.pixel_mean, backbone.pixel_std) == (config.model.pixel_mean, config.model.pixel_std)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
