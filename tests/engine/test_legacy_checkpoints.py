"""Checkpoints of the retired hand-written EfficientNet-Lite0 (``backbone.name: efficientnet_lite0``) load under
timm's names. The bundled light checkpoints were written by it: they are the fixture (re-exporting them in the new
format would need another legacy file here)."""

from __future__ import annotations

import pytest
import torch

from dsfnet.demo import BUNDLED
from dsfnet.engine.checkpoint import load_checkpoint, load_model, save_checkpoint

LEGACY = BUNDLED["light"]["dsfnet"]


def test_bundled_light_checkpoint_is_renamed_by_position_and_loads():
    raw = torch.load(LEGACY, map_location="cpu", weights_only=True)
    assert raw["config"]["model"]["backbone"]["name"] == "efficientnet_lite0"  # still the old format
    upgraded = load_checkpoint(LEGACY)
    assert upgraded["config"]["model"]["backbone"]["name"] == "timm:tf_efficientnet_lite0"
    assert len(upgraded["model"]) == len(raw["model"])  # same tensors, same order
    assert all(torch.equal(a, b) for a, b in zip(upgraded["model"].values(), raw["model"].values()))
    renamed = dict(zip(raw["model"], upgraded["model"]))
    assert renamed["backbone.conv4.0.0.weight"] == "backbone.conv4.conv_stem.weight"
    assert renamed["backbone.conv5.0._depthwise_conv.weight"] == "backbone.conv5.blocks_5.0.conv_dw.weight"
    assert all(old == new for old, new in renamed.items() if not old.startswith("backbone."))
    model, config = load_model(LEGACY)  # strict load into today's model
    assert config.model.backbone.name == "timm:tf_efficientnet_lite0"
    last_projection = raw["model"]["backbone.conv5.4._project_conv.weight"]
    assert torch.equal(model.backbone.conv5.blocks_6[0].conv_pwl.weight, last_projection)


def test_a_legacy_checkpoint_that_does_not_match_is_named(tmp_path):
    raw = torch.load(LEGACY, map_location="cpu", weights_only=True)
    del raw["model"]["backbone.conv5.4._bn2.running_var"]
    broken = save_checkpoint(tmp_path / "broken.pth", raw)
    with pytest.raises(ValueError, match=f"checkpoint {broken} \\(backbone efficientnet_lite0\\) has 239 tensors, "
                                         "expected 240"):
        load_checkpoint(broken)
