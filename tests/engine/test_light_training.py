"""The EfficientNet-Lite0 backbone fine-tunes from the `light` extra's ImageNet checkpoint."""

from __future__ import annotations

import torch

from dsfnet.engine.trainer import train
from dsfnet.models import efficientnet_lite

from enginehelpers import FakeClips, collate


def test_trains_a_few_iterations_from_the_checkpoint(tmp_path, tiny_config):
    config = tiny_config(
        "model.backbone.name=efficientnet_lite0", "model.backbone.weights=efficientnet_lite0",
        "model.backbone.norm=frozen_bn", "model.backbone.freeze_stem_and_conv2=true", "model.num_classes=3",
        f"model.pixel_mean={list(efficientnet_lite.PIXEL_MEAN)}",
        f"model.pixel_std={list(efficientnet_lite.PIXEL_STD)}",
        "train.iterations=3", "train.lr=0.005", "train.log_interval=1", "train.checkpoint_interval=3")
    result = train(config, tmp_path / "run", device="cpu", dataset=FakeClips(3, height=96, width=128),
                   collate_fn=collate, progress=False)
    assert result.finished and result.iteration == 3
    state, initial = result.model.backbone, torch.load(
        efficientnet_lite.package_weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(state.conv4[1][2]._project_conv.weight, initial["_blocks.2._project_conv.weight"])  # frozen
    assert not torch.equal(state.conv5[0]._expand_conv.weight, initial["_blocks.11._expand_conv.weight"])
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
