"""train.init_from: a fused variant starts from a trained baseline and computes its function at step 0."""

from __future__ import annotations

import pytest
import torch

from dsfnet.engine.checkpoint import FUSION_MODULES, initialise_from
from dsfnet.engine.trainer import train
from dsfnet.models.build import build_model

from enginehelpers import FakeClips, collate


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    from dsfnet.config import load_config
    from conftest import TINY_CONFIG

    config = load_config(TINY_CONFIG, ["model.variant=baseline", "train.iterations=3", "model.num_classes=3"])
    out = tmp_path_factory.mktemp("baseline")
    train(config, out, device="cpu", dataset=FakeClips(4), collate_fn=collate, progress=False)
    return out / "final.pth", config


def test_fused_variant_starts_with_the_baselines_weights_and_outputs(baseline_run, tiny_config):
    weights, base_config = baseline_run
    baseline = build_model(base_config.model)
    initialise_from(baseline, weights)
    config = tiny_config("model.variant=dsfnet", "model.num_classes=3")
    fused = build_model(config.model)
    fresh = initialise_from(fused, weights)
    assert fresh and all(name.split(".")[0] in FUSION_MODULES for name in fresh)
    for name, value in baseline.state_dict().items():
        assert torch.equal(fused.state_dict()[name], value), name
    clip = FakeClips(1, frames=3)[0]["clip"]
    baseline.eval(), fused.eval()
    with torch.no_grad():
        expected = baseline([clip[:1]])[0][0]
        got = fused([clip])[0][0]
    assert len(expected["boxes"]) > 0
    # zero-initialised value projections: the fused model is the baseline's function until it learns
    torch.testing.assert_close(got["boxes"], expected["boxes"])
    torch.testing.assert_close(got["scores"], expected["scores"])


def test_training_from_init_from_moves_the_fusions(baseline_run, tiny_config, tmp_path):
    weights, _ = baseline_run
    config = tiny_config("model.variant=frame", "model.num_classes=3", "train.iterations=2",
                         f"train.init_from={weights}")
    result = train(config, tmp_path / "run", device="cpu", dataset=FakeClips(4), collate_fn=collate, progress=False)
    assert result.model.frame_fusion.theta.weight.abs().sum() > 0


@pytest.mark.parametrize("override, message", [
    ("model.num_classes=5", "of shape"),
    ("model.roi.representation_size=32", "of shape"),
])
def test_mismatched_checkpoint_is_one_line_naming_the_key(baseline_run, tiny_config, override, message):
    weights, _ = baseline_run
    model = build_model(tiny_config("model.variant=dsfnet", override).model)
    with pytest.raises(ValueError, match=message) as error:
        initialise_from(model, weights)
    assert str(weights) in str(error.value) and "\n" not in str(error.value)
