"""Checkpoints of the retired hand-written EfficientNet-Lite0 (``backbone.name: efficientnet_lite0``) load under
timm's names. The fixture is such a checkpoint's layout: ``data/legacy_lite0_dsfnet.json`` holds the config,
tensor names, shapes and dtypes of the light DSFNet that the package shipped until the paired-protocol pair
replaced it (issue 23); the tests fill it with random values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dsfnet.engine.checkpoint import load_checkpoint, load_model, save_checkpoint

LAYOUT = Path(__file__).parent / "data" / "legacy_lite0_dsfnet.json"


@pytest.fixture
def legacy_checkpoint() -> dict:
    """The old-format checkpoint, every tensor random (seed 0) in its recorded shape and dtype."""
    layout = json.loads(LAYOUT.read_text())
    generator = torch.Generator().manual_seed(0)
    model = {name: torch.randn(shape, generator=generator).to(getattr(torch, dtype))
             for name, shape, dtype in layout.pop("tensors")}
    return {**layout, "model": model}


def test_legacy_light_checkpoint_is_renamed_by_position_and_loads(tmp_path, legacy_checkpoint):
    path = save_checkpoint(tmp_path / "legacy.pth", legacy_checkpoint)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["config"]["model"]["backbone"]["name"] == "efficientnet_lite0"  # still the old format
    upgraded = load_checkpoint(path)
    assert upgraded["config"]["model"]["backbone"]["name"] == "timm:tf_efficientnet_lite0"
    assert len(upgraded["model"]) == len(raw["model"])  # same tensors, same order
    assert all(torch.equal(a, b) for a, b in zip(upgraded["model"].values(), raw["model"].values()))
    renamed = dict(zip(raw["model"], upgraded["model"]))
    assert renamed["backbone.conv4.0.0.weight"] == "backbone.conv4.conv_stem.weight"
    assert renamed["backbone.conv5.0._depthwise_conv.weight"] == "backbone.conv5.blocks_5.0.conv_dw.weight"
    assert all(old == new for old, new in renamed.items() if not old.startswith("backbone."))
    model, config = load_model(path)  # strict load into today's model
    assert config.model.backbone.name == "timm:tf_efficientnet_lite0"
    last_projection = raw["model"]["backbone.conv5.4._project_conv.weight"]
    assert torch.equal(model.backbone.conv5.blocks_6[0].conv_pwl.weight, last_projection.float())


def test_a_legacy_checkpoint_that_does_not_match_is_named(tmp_path, legacy_checkpoint):
    del legacy_checkpoint["model"]["backbone.conv5.4._bn2.running_var"]
    broken = save_checkpoint(tmp_path / "broken.pth", legacy_checkpoint)
    with pytest.raises(ValueError, match=f"checkpoint {broken} \\(backbone efficientnet_lite0\\) has 239 tensors, "
                                         "expected 240"):
        load_checkpoint(broken)
