"""``ClipRPN`` and ``RoIBoxes`` against torchvision's own ``RegionProposalNetwork.forward`` and ``RoIHeads``."""

from __future__ import annotations

import torch
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork

from dsfnet.models.roi import RoIBoxes
from dsfnet.models.rpn import ClipRPN


def _rpn(tiny_config) -> ClipRPN:
    torch.manual_seed(0)
    return ClipRPN.from_config(tiny_config().model.rpn, 8)


def test_clip_rpn_on_one_frame_is_torchvisions_forward(tiny_config):
    rpn = _rpn(tiny_config)
    feats = torch.randn(1, 8, 6, 8, generator=torch.Generator().manual_seed(1))
    target = {"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]]), "labels": torch.tensor([2])}
    image = ImageList(torch.zeros(1, 3, 96, 128), [(96, 128)])
    for training in (True, False):
        rpn.train(training)
        torch.manual_seed(3)  # the same anchor sampling draws
        ours, our_losses = rpn(feats, (96, 128), key=0, key_target=target if training else None)
        torch.manual_seed(3)
        theirs, their_losses = RegionProposalNetwork.forward(rpn, image, {"0": feats}, [target] if training else None)
        assert torch.equal(ours[0], theirs[0])
        assert our_losses.keys() == their_losses.keys() and all(
            torch.equal(our_losses[name], their_losses[name]) for name in our_losses)


def test_clip_rpn_frames_are_independent_and_losses_are_the_key_frames(tiny_config):
    rpn = _rpn(tiny_config).eval()
    feats = torch.randn(3, 8, 6, 8, generator=torch.Generator().manual_seed(2))
    together, _ = rpn(feats, (96, 128))
    for frame in range(3):
        alone, _ = rpn(feats[frame : frame + 1], (96, 128))
        assert torch.allclose(together[frame], alone[0])
    target = {"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]]), "labels": torch.tensor([2])}
    rpn.train()
    torch.manual_seed(4)
    _, key_losses = rpn(feats, (96, 128), key=2, key_target=target)
    torch.manual_seed(4)
    _, alone_losses = rpn(feats[2:], (96, 128), key=0, key_target=target)
    assert all(torch.allclose(key_losses[name], alone_losses[name]) for name in key_losses)


def _roi_heads(config) -> RoIHeads:
    return RoIHeads(None, None, None, config.fg_iou_thresh, config.bg_iou_thresh, config.batch_size_per_image,
                    config.positive_fraction, tuple(config.bbox_reg_weights), config.score_thresh,
                    config.nms_thresh, config.detections_per_img)


def test_roi_boxes_sample_and_postprocess_as_torchvisions_roi_heads(tiny_config):
    config = tiny_config("model.roi.score_thresh=0.01").model.roi
    ours, theirs = RoIBoxes(config), _roi_heads(config)
    generator = torch.Generator().manual_seed(5)
    corners = torch.rand(200, 2, generator=generator) * torch.tensor([100.0, 70.0])
    proposals = torch.cat([corners, corners + 5 + torch.rand(200, 2, generator=generator) * 40], dim=1)
    for target in ({"boxes": torch.tensor([[10.0, 12.0, 60.0, 50.0], [50.0, 5.0, 90.0, 40.0]]),
                    "labels": torch.tensor([2, 3])},
                   {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}):
        torch.manual_seed(6)
        rois, labels, regression_targets = ours.select_training_samples(proposals, target)
        torch.manual_seed(6)
        (their_rois,), _, (their_labels,), (their_targets,) = theirs.select_training_samples([proposals], [target])
        assert torch.equal(rois, their_rois) and torch.equal(labels, their_labels)
        assert torch.equal(regression_targets, their_targets)
    classes = 5
    logits = torch.randn(200, classes + 1, generator=generator) * 3
    deltas = torch.randn(200, 4 * (classes + 1), generator=generator) * 0.5
    detections = ours.postprocess(logits, deltas, proposals, (80, 120))
    boxes, scores, labels = theirs.postprocess_detections(logits, deltas, [proposals], [(80, 120)])
    assert len(scores[0]) > 5
    assert torch.equal(detections["boxes"], boxes[0]) and torch.equal(detections["scores"], scores[0])
    assert torch.equal(detections["labels"], labels[0])
