"""RPN over one clip and the RoI box head (reduce conv, RoIAlign, fc6, fc7, predictor), from torchvision blocks."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers
from torchvision.ops import roi_align

from dsfnet.config import RoIHeadConfig, RPNConfig

FEATURE_STRIDE = 16


def build_rpn(config: RPNConfig, in_channels: int) -> RegionProposalNetwork:
    """torchvision's RPN on one stride-16 feature level."""
    anchors = AnchorGenerator(sizes=(tuple(config.anchor_sizes),), aspect_ratios=(tuple(config.aspect_ratios),))
    head = RPNHead(in_channels, anchors.num_anchors_per_location()[0])
    return RegionProposalNetwork(
        anchors, head,
        fg_iou_thresh=config.fg_iou_thresh, bg_iou_thresh=config.bg_iou_thresh,
        batch_size_per_image=config.batch_size_per_image, positive_fraction=config.positive_fraction,
        pre_nms_top_n={"training": config.pre_nms_top_n_train, "testing": config.pre_nms_top_n_test},
        post_nms_top_n={"training": config.post_nms_top_n_train, "testing": config.post_nms_top_n_test},
        nms_thresh=config.nms_thresh,
    )


def propose(
    rpn: RegionProposalNetwork, feats: Tensor, image_size: tuple[int, int],
    key_position: Optional[int] = None, key_target: Optional[dict] = None,
) -> tuple[list[Tensor], dict[str, Tensor]]:
    """Proposals for every frame of a clip; RPN losses for the key frame only.

    Args:
        feats: ``[r, d, h, w]`` (enhanced) conv4 maps of r frames, all of one ``image_size`` (H, W).
        key_position, key_target: when given, the RPN losses of frame ``key_position`` against the target
            ``{"boxes": [k, 4], "labels": [k]}``.

    Returns:
        Proposals ``float32 [p_i, 4]`` per frame (also under autocast), sorted by objectness, and
        ``{"loss_objectness", "loss_rpn_box_reg"}``.
    """
    frames, channels, height, width = feats.shape
    # The anchor generator reads the stride from the padded tensor size and the anchors' dtype from the feature
    # map: zero-stride float32 views of the right sizes (h*16 x w*16 for the image) give exactly stride 16 and
    # float32 anchors without allocating anything. Under bf16 autocast the features are bf16, and anchors, boxes
    # and regression targets in bf16 would be off by up to 4 px at 1000 px (8 bits of mantissa).
    canvas = feats.new_zeros((), dtype=torch.float32).expand(frames, 3, height * FEATURE_STRIDE,
                                                             width * FEATURE_STRIDE)
    grid = feats.new_zeros((), dtype=torch.float32).expand(frames, channels, height, width)
    images = ImageList(canvas, [tuple(image_size)] * frames)
    objectness, deltas = rpn.head([feats])
    anchors = rpn.anchor_generator(images, [grid])
    anchors_per_frame = objectness[0][0].numel()
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    # box decoding, proposal filtering and the losses in float32 whatever the head's output dtype (autocast)
    objectness, deltas = objectness.float(), deltas.float()
    proposals = rpn.box_coder.decode(deltas.detach(), anchors).view(frames, -1, 4)
    boxes, _ = rpn.filter_proposals(proposals, objectness, images.image_sizes, [anchors_per_frame])
    losses = {}
    if key_target is not None:
        key_anchors = [anchors[key_position]]
        labels, matched_boxes = rpn.assign_targets_to_anchors(key_anchors, [key_target])
        regression_targets = rpn.box_coder.encode(matched_boxes, key_anchors)
        loss_objectness, loss_box = rpn.compute_loss(
            objectness.view(frames, -1)[key_position].reshape(-1, 1),
            deltas.view(frames, -1, 4)[key_position],
            labels, regression_targets,
        )
        losses = {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}
    return boxes, losses


class RoIBoxHead(nn.Module):
    """conv5 -> 1x1 reduction -> RoIAlign -> fc6 (fc7 and the predictor are applied by the detector).

    The detector calls :meth:`fc6_features`, then the first instance fusion, :meth:`fc7_features`, the
    second fusion and :meth:`predict`, so that the fusions sit between the fully connected layers (DESIGN §2).
    """

    def __init__(self, config: RoIHeadConfig, in_channels: int, num_classes: int):
        super().__init__()
        self.pool_size = config.pool_size
        self.sampling_ratio = config.sampling_ratio
        self.reduce = nn.Conv2d(in_channels, config.reduced_channels, 1)
        self.fc6 = nn.Linear(config.reduced_channels * config.pool_size ** 2, config.representation_size)
        self.fc7 = nn.Linear(config.representation_size, config.representation_size)
        self.cls_score = nn.Linear(config.representation_size, num_classes + 1)
        self.bbox_pred = nn.Linear(config.representation_size, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def fc6_features(self, conv5: Tensor, boxes: list[Tensor]) -> Tensor:
        """conv5 ``[r, C5, h, w]`` and boxes ``[p_i, 4]`` per frame -> ``[sum p_i, representation_size]``."""
        reduced = F.relu(self.reduce(conv5))
        pooled = roi_align(reduced, boxes, self.pool_size, 1.0 / FEATURE_STRIDE, self.sampling_ratio)
        return F.relu(self.fc6(pooled.flatten(1)))

    def fc7_features(self, features: Tensor) -> Tensor:
        """``[m, D] -> [m, D]``."""
        return F.relu(self.fc7(features))

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``[m, D]`` -> class logits ``[m, C+1]``, class-specific box deltas ``[m, 4(C+1)]``."""
        return self.cls_score(features), self.bbox_pred(features)
