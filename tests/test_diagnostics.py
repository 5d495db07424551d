"""Attention diagnostics: shares on hand-built attention, the weights are those the modules apply, a model whose
attention is made uniform shows exactly the random shares without its detections changing, and a knocked-out
fusion detects as the same weights without that module; averaged frames detect on the clip's mean conv4 map."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.data.vid import read_vid_split
from dsfnet.demo import BUNDLED
from dsfnet.diagnostics import (TemporalAverage, attention_report, average_frames, capture_fusion_inputs,
                                change_sums, format_report, format_summary, frame_attention_stats,
                                instance_attention_shares, knock_out, relative_change)
from dsfnet.engine.checkpoint import load_model
from dsfnet.models.build import build_model
from dsfnet.models.fusion import FrameFusion, InstanceFusion


def test_instance_shares_of_a_hand_built_attention():
    # four instances: object 7 in frames 0 and 1, a background proposal, object 3 in frame 1
    objects, frames = torch.tensor([7, -1, 7, 3]), torch.tensor([0, 0, 1, 1])
    weights = torch.tensor([[[0.1, 0.2, 0.6, 0.1], [0.4, 0.3, 0.2, 0.1]],
                            [[0.25, 0.25, 0.25, 0.25], [0.1, 0.1, 0.4, 0.4]]])  # [H=2, q=2, m=4]
    shares = instance_attention_shares(weights, objects, frames, torch.tensor([0, 1]))
    assert int(shares["queries"]) == 1  # the background query is not counted
    assert torch.allclose(shares["same_object"], torch.tensor([0.6, 0.25], dtype=torch.float64))
    assert torch.allclose(shares["random"], torch.tensor([0.25, 0.25], dtype=torch.float64))  # 1 key of 4
    assert torch.allclose(shares["other_frames"], torch.tensor([0.7, 0.5], dtype=torch.float64))
    assert torch.allclose(shares["random_other_frames"], torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert torch.allclose(shares["self"], torch.tensor([0.1, 0.25], dtype=torch.float64))
    later = instance_attention_shares(weights[:, 1:], objects, frames, torch.tensor([3]))  # object 3, frame 1
    assert torch.allclose(later["same_object"], torch.zeros(2, dtype=torch.float64))  # not seen in frame 0
    assert torch.allclose(later["self"], torch.tensor([0.1, 0.4], dtype=torch.float64))


def test_frame_stats_of_a_hand_built_attention():
    # n = 2 frames of d = 2 channels; the query frame is frame 1 (tokens 2, 3)
    weights = torch.tensor([[0.5, 0.0, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]])
    stats = frame_attention_stats(weights, torch.tensor([1]), num_frames=2)
    assert float(stats["entropy"]) == pytest.approx(math.log(2) + math.log(4))
    assert float(stats["self_frame"]) == pytest.approx(0.5 + 0.5)
    assert float(stats["same_channel"]) == pytest.approx(1.0 + 0.5)  # channel 0: tokens 0, 2; channel 1: 1, 3
    assert int(stats["tokens"]) == 2


def test_relative_change_of_hand_built_features():
    inputs = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # summed squares 25
    fused = inputs + torch.tensor([[0.0, 1.0], [2.0, 0.0]])  # added: summed squares 5
    sums = change_sums(inputs, fused)
    assert sums.tolist() == [5.0, 25.0]
    assert relative_change(sums + change_sums(inputs, inputs)) == pytest.approx(math.sqrt(5 / 50))
    assert relative_change(torch.zeros(2, dtype=torch.float64)) == 0.0


def test_summary_compares_checkpoints_and_averages_each_variant():
    def stage(same, change):
        return {"same_object": same, "random": [0.1, 0.1], "relative_change": change}

    frame = {"entropy": 4.0, "self_frame": 0.25, "relative_change": 0.02}
    reports = {"a": {"variant": "instance", "frame": None,
                     "instance": [stage([0.3, 0.1], 0.4), stage([0.1, 0.1], 0.5)]},
               "b": {"variant": "instance", "frame": None,
                     "instance": [stage([0.5, 0.3], 0.6), stage([0.1, 0.3], 0.7)]},
               "c": {"variant": "frame", "instance": [], "frame": frame}}
    rows = format_summary(reports).splitlines()
    assert len(rows) == 2 + 3 + 1  # header, rule, three checkpoints, one mean row (frame has one checkpoint)
    assert rows[2].split(" | ")[2:4] == ["2.000", "0.400"]  # mean share 0.2 over random 0.1
    assert rows[4].split(" | ")[2:4] == ["–", "–"] and rows[4].endswith("| 4.000 | 0.250 | 0.020 |")
    mean_row = rows[5].split(" | ")
    assert mean_row[0] == "| mean ± sd (2)" and mean_row[2] == "3.000 ± 1.414" and mean_row[5] == "0.600 ± 0.141"


def test_attention_weights_are_the_ones_the_modules_apply():
    torch.manual_seed(0)
    fusion = InstanceFusion(dim=8, num_heads=2, key_dim=4, chunk_size=2)
    torch.nn.init.normal_(fusion.gamma.weight)
    feats, xy = torch.randn(5, 8), torch.rand(5, 2) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(5, 2) * 30], dim=1)
    weights = fusion.attention_weights(feats[3:], boxes[3:], feats, boxes)  # [2, 2, 5]
    values = fusion.gamma(feats).view(5, 2, 4).transpose(0, 1)  # head h: channels [4h, 4h + 4)
    expected = feats[3:] + (weights @ values).transpose(0, 1).flatten(1)
    assert torch.allclose(fusion(feats, boxes, query_index=torch.tensor([3, 4])), expected, atol=1e-6)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2))

    frame = FrameFusion(channels=3)
    torch.nn.init.normal_(frame.theta.weight)
    maps = torch.randn(2, 3, 4, 5)
    weights = frame.attention_weights(maps, query_frames=[1])  # [3, 6]
    tokens = frame.theta(maps).flatten(0, 1).flatten(1)  # [6, 20]
    assert torch.allclose(frame(maps, query_frames=[1]), maps[1:] + (weights @ tokens).view(1, 3, 4, 5), atol=1e-5)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "vid", 0, seed=2020, num_val_videos=1,
                                  num_frames=6, num_det_images=0)
    return read_vid_split(root, "VID_val_videos")


def test_uniform_attention_gives_the_random_shares_and_capture_changes_nothing(held_out):
    model, config = load_model(BUNDLED["tiny"]["dsfnet"])
    model.eval()
    clip = torch.rand(3, 3, 128, 160)
    with torch.no_grad():
        plain = model(clip)[0][0]
        with capture_fusion_inputs(model) as capture:
            captured = model(clip)[0][0]
    assert all(torch.equal(plain[key], captured[key]) for key in plain)
    assert len(capture.instance) == 2 and len(capture.frame) == 1 and len(capture.proposals) == 1
    # what each captured call added, read from its output: the bundled model's fusions are not identities
    assert len(capture.instance_change) == 2 and len(capture.frame_change) == 1
    assert all(relative_change(change) > 0 for change in capture.instance_change + capture.frame_change)
    hooked = [model.box_head, model.frame_fusion, *model.instance_fusions]
    assert not any(module._forward_hooks for module in hooked)  # the recording hooks are gone
    with torch.no_grad():  # no query / key projection and no geometry: every softmax is uniform
        for module in [model.frame_fusion.phi, *(f.xi for f in model.instance_fusions)]:
            module.weight.zero_()
            module.bias.zero_()
        for fusion in model.instance_fusions:
            fusion.psi.weight.zero_()
    with torch.no_grad():  # and a first instance fusion that adds nothing: its value projection back at zero
        model.instance_fusions[0].gamma.weight.zero_()
        model.instance_fusions[0].gamma.bias.zero_()
    report = attention_report(model, held_out, config, num_frames=3, frames_per_video=2)
    assert report["clips"] == 2
    assert report["instance"][0]["relative_change"] == 0.0
    assert report["instance"][1]["relative_change"] > 0 and report["frame"]["relative_change"] > 0
    for stage in report["instance"]:
        assert stage["queries"] > 0 and max(stage["random"]) > 0
        assert stage["same_object"] == pytest.approx(stage["random"])
        assert stage["other_frames"] == pytest.approx(stage["random_other_frames"])
    frame = report["frame"]
    assert frame["entropy"] == pytest.approx(frame["max_entropy"])
    assert frame["self_frame"] == pytest.approx(1 / 3)
    assert frame["same_channel"] == pytest.approx(1 / model.frame_fusion.phi.out_channels)
    assert "| 0 |" in format_report(report) and "ratio" in format_report(report)


def test_frame_variant_capture_is_the_key_frame_after_its_support_frames(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config("model.variant=frame").model).eval()
    clip = torch.rand(3, 3, 96, 128)
    with torch.no_grad(), capture_fusion_inputs(model) as capture:
        model(clip, key=1)
        conv4 = model.conv4(clip)
    (args, kwargs), = capture.frame
    feats, memory = args
    assert torch.equal(feats, conv4[[1]]) and len(memory.blocks()) == 2  # the key frame against its support frames
    # the columns of its attention: the support frames, then the key frame, as for the clip in that order
    weights = model.frame_fusion.attention_weights(*args, **kwargs)
    expected = model.frame_fusion.attention_weights(conv4[[0, 2, 1]], query_frames=[2])
    assert torch.allclose(weights, expected, atol=1e-6)
    assert capture.instance == [] and not model.frame_fusion._forward_hooks  # the hook is gone


@pytest.mark.parametrize("fusion, removed", [("frame", "frame_fusion"), ("instance", "instance_fusions")])
def test_knocked_out_fusion_detects_as_the_model_without_it(tiny_config, fusion, removed):
    torch.manual_seed(0)
    model = build_model(tiny_config("model.variant=dsfnet").model).eval()
    with torch.no_grad():  # trained-looking fusions: value projections away from their zero initialisation
        for projection in [model.frame_fusion.theta, *(stage.gamma for stage in model.instance_fusions)]:
            projection.weight.normal_(std=0.05)
            projection.bias.normal_(std=0.05)
    without = copy.deepcopy(model)
    setattr(without, removed, None)
    clip = torch.rand(3, 3, 96, 128)

    def detect(detector):
        with torch.no_grad():
            return detector(clip, key=1)[0][0]

    expected, before = detect(without), detect(model)
    assert not torch.equal(before["scores"], expected["scores"])  # the fusion changed the detections
    knock_out(model, fusion)
    after = detect(model)
    assert torch.equal(after["labels"], expected["labels"])
    # equal up to rounding: with instance fusion the RoI head runs over all frames' proposals in one batch
    for key in ("boxes", "scores"):
        torch.testing.assert_close(after[key], expected[key], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match=f"no {fusion}-level fusion"):
        knock_out(without, fusion)
    with pytest.raises(ValueError, match="must be one of"):
        knock_out(model, "both")


@pytest.mark.parametrize("normalize_tokens", [False, True])
def test_similarity_mixture_weighs_each_channels_frames_by_their_same_channel_logits(tiny_config, normalize_tokens):
    torch.manual_seed(0)
    baseline = build_model(tiny_config("model.variant=baseline").model).eval()
    d = baseline.backbone.conv4_channels
    maps = torch.randn(3, d, 4, 5) * torch.linspace(0.5, 3.0, d).view(1, d, 1, 1)  # [n, d, h, w]
    average_frames(baseline, 0.5, similarity=True, normalize_tokens=normalize_tokens)
    expected = torch.empty(d, 4, 5)
    for channel in range(d):  # a slow reference from eq. 2 with identity projections, one channel at a time
        tokens = maps[:, channel].flatten(1).double()  # [n, h·w]
        keys = tokens / tokens.pow(2).mean(dim=1, keepdim=True).sqrt() if normalize_tokens else tokens
        logits = torch.stack([keys[1] @ keys[frame] for frame in range(3)]) / math.sqrt(20)
        mixture = sum(weight * maps[frame, channel].double() for frame, weight in enumerate(logits.softmax(0)))
        expected[channel] = maps[1, channel] + 0.5 * (mixture.float() - maps[1, channel])
    with torch.no_grad():
        weighed = baseline.frame_fusion(maps, query_frames=[1])[0]
        uniform = TemporalAverage(d, weight=0.5)(maps, query_frames=[1])[0]
        still = baseline.frame_fusion(maps[[1, 1, 1]], query_frames=[0])[0]
    torch.testing.assert_close(weighed, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(uniform, maps[1] + 0.5 * (maps.mean(dim=0) - maps[1]))
    assert not torch.allclose(uniform, expected, atol=1e-3)  # the frames are not weighed equally
    torch.testing.assert_close(still, maps[1])  # a clip of one repeated map: any same-channel mixture is that map


def test_averaged_frames_detect_on_the_weighted_mean_of_the_clips_conv4(tiny_config):
    torch.manual_seed(0)
    baseline = build_model(tiny_config("model.variant=baseline").model).eval()
    clip = torch.rand(3, 3, 96, 128)
    size = tuple(clip.shape[-2:])
    with torch.no_grad():
        conv4 = baseline.conv4(clip)
        plain = baseline(clip, key=1)[0][0]
        expected = {weight: baseline.detect_exact(conv4[[1]] + weight * (conv4.mean(dim=0, keepdim=True) - conv4[[1]]),
                                                  size) for weight in (1.0, 0.5)}
    assert not torch.equal(expected[1.0]["scores"], plain["scores"])  # the mean map detects differently
    for weight in (0.0, 0.5, 1.0):
        averaged = copy.deepcopy(baseline)
        average_frames(averaged, weight)
        with torch.no_grad():
            got = averaged(clip, key=1)[0][0]
        want = plain if weight == 0.0 else expected[weight]
        assert torch.equal(got["labels"], want["labels"])
        for key in ("boxes", "scores"):
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        average_frames(copy.deepcopy(baseline), 1.5)
    with pytest.raises(ValueError, match="of its own"):
        average_frames(build_model(tiny_config("model.variant=frame").model), 0.5)
