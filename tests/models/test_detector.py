"""Behaviour of the whole detector: invariances, baseline equivalence, gradients, overfitting, bad input."""

from __future__ import annotations

import pytest
import torch

from dsfnet.config import VARIANTS
from dsfnet.models.build import build_model


def _randomise_fusion_outputs(model, seed=1):
    """Give the zero-initialised fusion output layers (theta, gamma) random weights so fusion is not a no-op."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".theta." in name or ".gamma." in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


def _scene(frames=3, height=96, width=128, seed=0):
    """A clip with one bright square that moves a little across frames, on noise; target of frame 0."""
    generator = torch.Generator().manual_seed(seed)
    clip = torch.rand(frames, 3, height, width, generator=generator) * 0.3
    for index in range(frames):
        x, y = 30 + 3 * index, 20 + 2 * index
        clip[index, :, y : y + 40, x : x + 44] = torch.tensor([0.9, 0.6, 0.1]).view(3, 1, 1)
    target = {"boxes": torch.tensor([[30.0, 20.0, 73.0, 59.0]]), "labels": torch.tensor([5])}
    return clip, target


def _model(tiny_config, variant, seed=0, *overrides):
    torch.manual_seed(seed)
    return build_model(tiny_config(f"model.variant={variant}", *overrides).model)


@pytest.mark.parametrize("variant", VARIANTS)
def test_support_frame_order_does_not_change_key_detections(tiny_config, variant):
    model = _model(tiny_config, variant).eval()
    _randomise_fusion_outputs(model)
    clip, _ = _scene(frames=4)
    with torch.no_grad():
        reference, _ = model(clip, key=0)
        permuted, _ = model(clip[[0, 3, 1, 2]], key=0)
        key_moved, _ = model(clip[[2, 1, 0, 3]], key=2)
    for other in (permuted[0], key_moved[0]):
        assert torch.allclose(reference[0]["boxes"], other["boxes"], atol=1e-4)
        assert torch.allclose(reference[0]["scores"], other["scores"], atol=1e-5)
        assert torch.equal(reference[0]["labels"], other["labels"])


@pytest.mark.parametrize("variant", ["frame", "instance", "dsfnet"])
def test_zero_initialised_fusion_gives_the_baseline(tiny_config, variant):
    baseline = _model(tiny_config, "baseline", seed=0)
    model = _model(tiny_config, variant, seed=1)
    missing = model.load_state_dict(baseline.state_dict(), strict=False).missing_keys
    assert all("fusion" in key for key in missing)  # only the fusion modules are extra
    clip, target = _scene(frames=3)
    baseline.eval(), model.eval()
    with torch.no_grad():
        expected, _ = baseline(clip)
        got, _ = model(clip)
    # The fusions add exactly zero; the only differences come from the backbone running on 1 frame (baseline)
    # or n frames (fusion variants), for which CPU conv kernels may sum in another order (~1e-6).
    assert torch.equal(expected[0]["labels"], got[0]["labels"])
    assert torch.allclose(expected[0]["boxes"], got[0]["boxes"], atol=1e-3)
    assert torch.allclose(expected[0]["scores"], got[0]["scores"], atol=1e-5)
    baseline.train(), model.train()
    torch.manual_seed(5)
    _, expected_losses = baseline(clip, [target])
    torch.manual_seed(5)
    _, losses = model(clip, [target])
    for name, value in expected_losses.items():
        assert torch.allclose(value, losses[name], rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("variant, geometry", [(v, True) for v in VARIANTS] + [("instance", False), ("dsfnet", False)])
def test_every_parameter_gets_a_gradient_within_three_steps(tiny_config, variant, geometry):
    model = _model(tiny_config, variant, 0, f"model.instance_fusion.geometry={str(geometry).lower()}").train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=0.0)
    clip, target = _scene(frames=3)
    touched = set()
    for _ in range(3):
        optimizer.zero_grad()
        _, losses = model(clip, [target])
        sum(losses.values()).backward()
        touched |= {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        optimizer.step()
    dead = [name for name, p in model.named_parameters() if p.requires_grad and name not in touched]
    assert not dead, f"parameters without gradient after 3 steps: {dead}"


def test_tiny_dsfnet_overfits_one_clip(tiny_config):
    model = _model(tiny_config, "dsfnet").train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    clip, target = _scene(frames=3)
    history = []
    for _ in range(80):
        optimizer.zero_grad()
        _, losses = model(clip, [target])
        loss = sum(losses.values())
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    assert last < first / 5, f"loss went from {first:.3f} to {last:.3f}"
    model.eval()
    with torch.no_grad():
        detections, _ = model(clip)
    best = detections[0]["scores"].argmax()
    assert detections[0]["labels"][best] == 5


@pytest.mark.parametrize("variant", VARIANTS)
def test_any_size_any_n_and_batches(tiny_config, variant):
    model = _model(tiny_config, variant).eval()
    with torch.no_grad():
        single, _ = model(torch.rand(1, 3, 61, 97))  # n = 1, odd non-square
        mixed, _ = model([torch.rand(2, 3, 80, 112), torch.rand(5, 3, 99, 65)], key=1)
        stacked, _ = model(torch.rand(2, 3, 3, 64, 64))
    assert len(single) == 1 and len(mixed) == 2 and len(stacked) == 2
    for detections, (height, width) in zip(single + mixed, [(61, 97), (80, 112), (99, 65)]):
        boxes = detections["boxes"]
        assert boxes.shape[1] == 4 and len(boxes) == len(detections["scores"]) == len(detections["labels"])
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()


def test_batched_clips_equal_clips_run_alone(tiny_config):
    model = _model(tiny_config, "dsfnet").eval()
    _randomise_fusion_outputs(model)
    first, second = torch.rand(3, 3, 64, 80), torch.rand(3, 3, 96, 72)
    with torch.no_grad():
        together, _ = model([first, second])
        alone, _ = model(second)
    assert torch.allclose(together[1]["scores"], alone[0]["scores"])


def test_bad_input_is_a_clear_value_error(tiny_config):
    model = _model(tiny_config, "dsfnet")
    clip, target = _scene(frames=2, height=64, width=64)
    cases = [
        (lambda: model.eval()([]), "empty"),
        (lambda: model.eval()(torch.rand(0, 3, 64, 64)), "at least one frame"),
        (lambda: model.eval()([[torch.rand(3, 64, 64), torch.rand(3, 64, 60)]]), "same size"),
        (lambda: model.eval()(torch.rand(2, 1, 64, 64)), "channels"),
        (lambda: model.eval()(clip, key=5), "out of range"),
        (lambda: model.train()(clip), "targets are required"),
        (lambda: model.train()(clip, [{"boxes": torch.tensor([[0.0, 0, 70, 10]]), "labels": torch.tensor([1])}]),
         "outside"),
        (lambda: model.train()(clip, [{"boxes": torch.tensor([[20.0, 0, 10, 10]]), "labels": torch.tensor([1])}]),
         "x2 < x1"),
        (lambda: model.train()(clip, [{"boxes": target["boxes"] / 2, "labels": torch.tensor([31])}]), "1..30"),
        (lambda: model.train()(clip, [{"boxes": target["boxes"] / 2, "labels": torch.tensor([0])}]), "1..30"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_support_memory_without_a_frame_equals_a_memory_of_the_other_frames_rows(tiny_config):
    from dsfnet.models.detector import SupportMemory
    from dsfnet.models.fusion import FrameMemory, InstanceMemory
    from dsfnet.models.support import FrameRows

    model = _model(tiny_config, "dsfnet").eval()
    _randomise_fusion_outputs(model)
    clip, _ = _scene(frames=4)
    with torch.no_grad():
        conv4 = model.conv4(clip)
        full = model.support_memory(conv4[:3], (96, 128))
        # what `exclude=1` stands for: the rows of frames 0 and 2 (instances fused among all three frames)
        tokens = torch.cat([torch.arange(full.frames.rows.total)[full.frames.rows.frame(f)] for f in (0, 2)])
        frames = FrameMemory(full.frames.keys[tokens], full.frames.values[tokens],
                             FrameRows.of_counts([len(tokens) // 2] * 2))
        instances = []
        for memory in full.instances:
            rows = torch.cat([torch.arange(memory.rows.total)[memory.rows.frame(f)] for f in (0, 2)])
            counts = [memory.rows.frame(f).stop - memory.rows.frame(f).start for f in (0, 2)]
            instances.append(InstanceMemory(memory.keys[:, rows], memory.values[rows], memory.boxes[rows],
                                            FrameRows.of_counts(counts)))
        rows = SupportMemory(2, frames, tuple(instances))
        masked = model.detect_cached(conv4[3:], (96, 128), full, exclude=1)
        removed = model.detect_cached(conv4[3:], (96, 128), rows)
        with_frame = model.detect_cached(conv4[3:], (96, 128), full)
    for key in ("boxes", "scores", "labels"):
        assert torch.allclose(masked[key].float(), removed[key].float(), atol=1e-5)
    assert len(masked["scores"]) and not torch.allclose(masked["scores"], with_frame["scores"])
    with pytest.raises(ValueError, match="support frame 3 is not in a memory of 3 frames"):
        model.detect_cached(conv4[3:], (96, 128), full, exclude=3)
