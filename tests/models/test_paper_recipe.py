"""The paper recipe where tiny fp32 tests cannot see: boxes under bf16 autocast at a real frame size, negative key
indices, and the support-proposal count shared by ``exact`` and ``cached`` (issue 11)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dsfnet.config import VARIANTS
from dsfnet.models.build import build_model

REAL_SIZE = (400, 608)  # a real-image size: ResNet-50 conv4 maps of 25 x 38


class FixedHead(nn.Module):
    """An RPN head that returns given outputs, in bf16 under autocast (as the real head's convs would) and as the
    same values in float32 otherwise: the two paths then see identical head outputs."""

    def __init__(self, objectness: torch.Tensor, deltas: torch.Tensor):
        super().__init__()
        self.objectness, self.deltas = objectness.bfloat16(), deltas.bfloat16()

    def forward(self, feats):
        dtype = torch.bfloat16 if torch.is_autocast_enabled("cpu") else torch.float32
        return [self.objectness.to(dtype)], [self.deltas.to(dtype)]


class Recorder:
    """Wraps a bound method and keeps what each call returned (or received, with ``arguments=True``)."""

    def __init__(self, owner, name: str, arguments: bool = False):
        self.calls = []
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            self.calls.append(args if arguments else result)
            return result

        setattr(owner, name, wrapper)


def _real_size_model(tiny_config, variant="dsfnet"):
    torch.manual_seed(0)
    config = tiny_config(
        f"model.variant={variant}", "model.backbone.name=resnet50", "model.rpn.anchor_sizes=[64,128,256,512]",
        "model.rpn.pre_nms_top_n_train=2000", "model.rpn.post_nms_top_n_train=100",
        "model.rpn.pre_nms_top_n_test=2000", "model.rpn.post_nms_top_n_test=100",
        "model.instance_fusion.support_proposals=100", "model.roi.batch_size_per_image=64")
    model = build_model(config.model)
    height, width = REAL_SIZE
    cells = (height + 15) // 16, (width + 15) // 16
    generator = torch.Generator().manual_seed(1)
    anchors = model.rpn.anchor_generator.num_anchors_per_location()[0]
    objectness = torch.randn(2, anchors, *cells, generator=generator)
    deltas = 0.2 * torch.randn(2, 4 * anchors, *cells, generator=generator)
    model.rpn.head = FixedHead(objectness, deltas)
    return model


def _clip_and_target():
    generator = torch.Generator().manual_seed(2)
    clip = torch.rand(2, 3, *REAL_SIZE, generator=generator)
    # odd coordinates that bf16 cannot represent near 600 px (its step there is 4 px)
    target = {"boxes": torch.tensor([[101.3, 57.9, 433.7, 311.1], [517.2, 203.6, 601.9, 391.4]]),
              "labels": torch.tensor([3, 7])}
    return clip, target


def _train_pass(model, autocast: bool) -> dict:
    """One training forward; returns what the box pipeline produced."""
    proposals = Recorder(model.rpn, "filter_proposals")
    sampled = Recorder(model.roi, "select_training_samples")
    pooled = Recorder(model.box_head, "forward", arguments=True)
    clip, target = _clip_and_target()
    torch.manual_seed(5)  # same RPN / RoI sampling draws in both passes
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        _, losses = model.train()(clip, target)
    boxes, _, regression_targets = sampled.calls[0]
    return {"proposals": proposals.calls[0][0], "sampled": boxes, "targets": regression_targets,
            "roi_boxes": pooled.calls[0][1], "losses": losses}


def test_boxes_and_targets_stay_float32_under_bf16_autocast(tiny_config):
    fp32 = _train_pass(_real_size_model(tiny_config), autocast=False)
    bf16 = _train_pass(_real_size_model(tiny_config), autocast=True)
    for frame_fp32, frame_bf16 in zip(fp32["proposals"], bf16["proposals"]):
        assert frame_bf16.dtype == torch.float32
        assert torch.equal(frame_fp32, frame_bf16)  # the same head outputs give the same proposals
    assert bf16["sampled"].dtype == bf16["targets"].dtype == torch.float32
    assert torch.equal(fp32["sampled"], bf16["sampled"])
    assert torch.equal(fp32["targets"], bf16["targets"])
    # the ground truth is among the sampled RoIs (torchvision adds it) unchanged by any cast
    gt = _clip_and_target()[1]["boxes"]
    assert all(any(torch.equal(box, row) for row in bf16["sampled"]) for box in gt)
    assert all(boxes.dtype == torch.float32 for boxes in bf16["roi_boxes"])
    assert all(torch.isfinite(loss) for loss in bf16["losses"].values())


def test_inference_boxes_stay_float32_under_bf16_autocast(tiny_config):
    model = _real_size_model(tiny_config).eval()
    proposals = Recorder(model.rpn, "filter_proposals")
    clip, _ = _clip_and_target()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        detections, _ = model(clip, key=0)
    assert all(boxes.dtype == torch.float32 for boxes in proposals.calls[0][0])
    assert detections[0]["boxes"].dtype == detections[0]["scores"].dtype == torch.float32


def _scene(frames=3, height=96, width=128):
    generator = torch.Generator().manual_seed(0)
    clip = torch.rand(frames, 3, height, width, generator=generator)
    target = {"boxes": torch.tensor([[30.0, 20.0, 73.0, 59.0]]), "labels": torch.tensor([5])}
    return clip, target


@pytest.mark.parametrize("variant", VARIANTS)
def test_negative_key_is_python_style(tiny_config, variant):
    torch.manual_seed(0)
    model = build_model(tiny_config(f"model.variant={variant}").model)
    clip, target = _scene()
    with torch.no_grad():
        from_end, _ = model.eval()(clip, key=-1)
        last, _ = model(clip, key=2)
    assert torch.equal(from_end[0]["boxes"], last[0]["boxes"])
    assert torch.equal(from_end[0]["scores"], last[0]["scores"])
    losses = []
    for key in (-3, 0):
        torch.manual_seed(1)
        losses.append(model.train()(clip, target, key=key)[1])
    assert losses[0] == losses[1]
    with pytest.raises(ValueError, match="key frame index -4 is out of range"):
        model(clip, target, key=-4)


def test_exact_and_cached_use_the_same_number_of_support_proposals(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config("model.rpn.post_nms_top_n_test=30",
                                    "model.instance_fusion.support_proposals=7").model).eval()
    clip, _ = _scene(frames=3)
    proposals = Recorder(model.rpn, "filter_proposals")
    keys = Recorder(model.instance_fusions[0], "project_keys", arguments=True)
    with torch.no_grad():
        conv4 = model.conv4(clip)
        model.detect_exact(conv4, tuple(clip.shape[-2:]), key=2)
        per_frame = [len(boxes) for boxes in proposals.calls[0][0]]
        exact_instances = keys.calls[0][0].shape[0]
        memory = model.support_memory(conv4[:2], tuple(clip.shape[-2:]))
    assert per_frame[2] > 7  # the test frame keeps all its proposals, more than a support frame's
    assert exact_instances == per_frame[2] + sum(min(7, count) for count in per_frame[:2])
    support_counts = [len(boxes) for boxes in proposals.calls[1][0]]  # support frames enhanced among themselves
    assert len(memory.instances[0].boxes) == sum(min(7, count) for count in support_counts) < sum(support_counts)
