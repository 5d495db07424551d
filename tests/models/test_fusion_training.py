"""How the fusions are trained (issue 23): the instance fusion's keys in training, paired initialisation of the
ablation's variants, and the attention statistics a training run logs."""

from __future__ import annotations

import json

import pytest
import torch

from dsfnet.config import VARIANTS
from dsfnet.models.build import build_model

from tests.models.test_detector import _model, _randomise_fusion_outputs, _scene


def _record_fuse_calls(model) -> list[dict]:
    """Every instance fusion call's key boxes (the first ``num_keys`` rows) and query boxes (forward hooks)."""
    calls = []

    def recording(module, args, kwargs, output):
        boxes, num_keys, query_index = args[1], kwargs.get("num_keys"), kwargs.get("query_index")
        keys = boxes if num_keys is None else boxes[:num_keys]
        queries = boxes if query_index is None else boxes[query_index]
        calls.append({"keys": keys.detach().clone(), "queries": queries.detach().clone()})

    for fusion in model.instance_fusions:
        fusion.register_forward_hook(recording, with_kwargs=True)
    return calls


def _contains_row(boxes: torch.Tensor, row: torch.Tensor) -> bool:
    return bool((boxes == row).all(dim=1).any())


@pytest.mark.parametrize("variant", ["instance", "dsfnet"])
def test_no_ground_truth_box_is_an_attention_key_in_training(tiny_config, variant):
    """Keys are the RPN proposals of every frame, as at test time; the key frame's sampled RoIs, ground truth
    included, are queries whose losses are taken, never keys (the paper; SELSA; DESIGN §2.2)."""
    model = _model(tiny_config, variant).train()
    calls = _record_fuse_calls(model)
    clip, target = _scene()
    target["boxes"] = torch.tensor([[30.25, 20.5, 73.75, 59.25]])  # off the pixel grid: no proposal equals it
    model(clip, target)
    assert len(calls) == 2  # one per instance fusion stage
    gt = target["boxes"][0]
    proposals = tiny_config().model.rpn.post_nms_top_n_train
    for stage, call in enumerate(calls):
        assert not _contains_row(call["keys"], gt), f"stage {stage + 1}: a ground-truth box is a key"
        assert len(call["keys"]) <= 3 * proposals  # the three frames' proposals, nothing else
    sampled = calls[1]["queries"]
    assert _contains_row(sampled, gt)  # the ground truth is among the queries whose losses are taken
    assert len(sampled) <= tiny_config().model.roi.batch_size_per_image
    assert len(calls[0]["queries"]) == len(calls[0]["keys"]) + len(sampled)  # stage 1 also enhances the keys


def test_the_keys_in_training_are_what_exact_inference_uses(tiny_config):
    """The same clip gives the same key boxes in training as in ``exact`` inference (same weights, same RPN)."""
    model = _model(tiny_config, "instance")
    _randomise_fusion_outputs(model)
    clip, target = _scene()
    calls = _record_fuse_calls(model)
    model.eval()
    with torch.no_grad():
        model(clip)
    model.train()
    model.rpn.training = False  # the test-time proposal counts, so that only the mode of the heads differs
    model(clip, target)
    assert torch.equal(calls[0]["keys"], calls[2]["keys"])


def test_every_variant_starts_from_the_same_shared_weights_under_one_seed(tiny_config):
    """Paired seeds: backbone, RPN and RoI head are identical across the four variants built with one seed, and
    the global random state after building is the same (RoI sampling draws then match too)."""
    shared, states = {}, {}
    for variant in VARIANTS:
        torch.manual_seed(7)
        model = build_model(tiny_config(f"model.variant={variant}").model)
        shared[variant] = {name: value for name, value in model.state_dict().items()
                           if not name.startswith(("frame_fusion.", "instance_fusions."))}
        states[variant] = torch.get_rng_state()
    for variant in VARIANTS[1:]:
        assert shared[variant].keys() == shared["baseline"].keys()
        for name, value in shared["baseline"].items():
            assert torch.equal(shared[variant][name], value), f"{variant}: {name} differs from the baseline's"
        assert torch.equal(states[variant], states["baseline"])
    torch.manual_seed(8)
    other = build_model(tiny_config("model.variant=baseline").model).state_dict()
    assert not torch.equal(other["rpn.head.conv.0.0.weight"], shared["baseline"]["rpn.head.conv.0.0.weight"])


def test_frame_fusion_options_reach_the_built_frame_fusion(tiny_config):
    """``model.frame_fusion.identity_projections`` builds ϕ, φ as identity 1×1 convolutions and
    ``model.frame_fusion.value_init`` θ as that multiple of the identity (zero by default); the shared weights and
    the random state after building are those of the default (paired seeds stay paired).
    ``model.frame_fusion.subtract_own_value`` and ``model.frame_fusion.same_channel`` (off by default) reach the
    module."""
    built = {}
    for option in ("false", "true"):
        torch.manual_seed(3)
        config = tiny_config("model.variant=frame", f"model.frame_fusion.identity_projections={option}",
                             f"model.frame_fusion.value_init={0.25 if option == 'true' else 0}")
        model = build_model(config.model)
        built[option] = (model, torch.get_rng_state())
    fusion = built["true"][0].frame_fusion
    eye = torch.eye(fusion.phi.in_channels)
    for projection in (fusion.phi, fusion.varphi):
        assert torch.equal(projection.weight[:, :, 0, 0], eye) and not projection.bias.any()
    assert not torch.equal(built["false"][0].frame_fusion.phi.weight[:, :, 0, 0], eye)
    assert torch.equal(fusion.theta.weight[:, :, 0, 0], 0.25 * eye) and not fusion.theta.bias.any()
    assert not built["false"][0].frame_fusion.theta.weight.any()
    assert torch.equal(built["true"][1], built["false"][1])
    assert torch.equal(built["true"][0].rpn.head.conv[0][0].weight, built["false"][0].rpn.head.conv[0][0].weight)
    for option in ("subtract_own_value", "same_channel"):
        assert getattr(built["true"][0].frame_fusion, option) is False
        config = tiny_config("model.variant=frame", f"model.frame_fusion.{option}=true")
        assert getattr(build_model(config.model).frame_fusion, option) is True


def test_training_logs_each_fusions_attention_entropy_and_logit_spread(tiny_config, tmp_path):
    """metrics.jsonl (and TensorBoard) get every fusion's attention entropy and logit spread, so that a collapsing
    attention is visible in any run."""
    from dsfnet.engine.trainer import train
    from tests.engine.enginehelpers import FakeClips, collate

    config = tiny_config("model.variant=dsfnet", "train.iterations=4", "train.log_interval=2",
                         "model.frame_fusion.value_init=0.5")
    result = train(config, tmp_path / "run", device="cpu", dataset=FakeClips(4), collate_fn=collate, progress=False)
    records = [json.loads(line)["train"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
               if "train" in json.loads(line)]
    assert len(records) == 2
    for record in records:
        for fusion in ("frame", "instance1", "instance2"):
            entropy, top = record[f"attention/{fusion}_entropy"], record[f"attention/{fusion}_max_entropy"]
            assert 0 < entropy <= top + 1e-6 and record[f"attention/{fusion}_logit_std"] >= 0
    # and where θ stands: it moved from 0.5·I, and the last record is the trained model's
    theta = result.model.frame_fusion.theta.weight.detach()[:, :, 0, 0]
    assert records[-1]["attention/frame_value_diagonal"] == pytest.approx(theta.diagonal().mean().item())
    assert records[-1]["attention/frame_value_norm"] == pytest.approx(theta.norm().item())
    assert records[-1]["attention/frame_value_diagonal"] != 0.5
    assert list((tmp_path / "run" / "tb").glob("events.*"))
