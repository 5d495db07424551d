"""The region proposal network over the frames of one clip: torchvision's RPN on one stride-16 feature level.

:class:`ClipRPN` is a :class:`~torchvision.models.detection.rpn.RegionProposalNetwork` whose ``forward`` follows
torchvision's own (head → anchors → decode → filter → losses) on a batch of frames that share one image size,
given as a tensor rather than an ``ImageList`` and a feature dict, with the losses of the key frame only.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

from dsfnet.config import RPNConfig
from dsfnet.models.heads import FEATURE_STRIDE


class ClipRPN(RegionProposalNetwork):
    """Proposals for every frame of a clip (each frame an "image" of torchvision's batch); RPN losses for the
    key frame only, as the detector is trained on key frames (DESIGN §2)."""

    @classmethod
    def from_config(cls, config: RPNConfig, in_channels: int) -> "ClipRPN":
        anchors = AnchorGenerator(sizes=(tuple(config.anchor_sizes),), aspect_ratios=(tuple(config.aspect_ratios),))
        return cls(
            anchors, RPNHead(in_channels, anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=config.fg_iou_thresh, bg_iou_thresh=config.bg_iou_thresh,
            batch_size_per_image=config.batch_size_per_image, positive_fraction=config.positive_fraction,
            pre_nms_top_n={"training": config.pre_nms_top_n_train, "testing": config.pre_nms_top_n_test},
            post_nms_top_n={"training": config.post_nms_top_n_train, "testing": config.post_nms_top_n_test},
            nms_thresh=config.nms_thresh,
        )

    def forward(self, feats: Tensor, image_size: tuple[int, int], key: Optional[int] = None,
                key_target: Optional[dict] = None) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Propose boxes on the (enhanced) conv4 maps ``[r, d, h, w]`` of r frames of size ``image_size`` (H, W).

        Args:
            key, key_target: when given, the RPN losses of frame ``key`` against ``{"boxes": [k, 4],
                "labels": [k]}``.
        Returns:
            Proposals ``float32 [p_i, 4]`` per frame (also under autocast), sorted by objectness, and
            ``{"loss_objectness", "loss_rpn_box_reg"}`` (empty without a target).
        """
        images, grid = _frames_as_images(feats, image_size)
        objectness, deltas = self.head([feats])
        anchors = self.anchor_generator(images, [grid])
        anchors_per_frame = [objectness[0][0].numel()]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        # box decoding, proposal filtering and the losses in float32 whatever the head's output dtype (autocast)
        objectness, deltas = objectness.float(), deltas.float()
        proposals = self.box_coder.decode(deltas.detach(), anchors).view(len(feats), -1, 4)
        boxes, _ = self.filter_proposals(proposals, objectness, images.image_sizes, anchors_per_frame)
        if key_target is None:
            return boxes, {}
        return boxes, self._key_losses(anchors[key], objectness.view(len(feats), -1)[key],
                                       deltas.view(len(feats), -1, 4)[key], key_target)

    def _key_losses(self, anchors: Tensor, objectness: Tensor, deltas: Tensor, target: dict) -> dict[str, Tensor]:
        """torchvision's RPN losses of one frame (its anchors ``[A, 4]``, objectness ``[A]``, deltas ``[A, 4]``)."""
        labels, matched_boxes = self.assign_targets_to_anchors([anchors], [target])
        regression_targets = self.box_coder.encode(matched_boxes, [anchors])
        loss_objectness, loss_box = self.compute_loss(objectness.reshape(-1, 1), deltas, labels, regression_targets)
        return {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}


def _frames_as_images(feats: Tensor, image_size: tuple[int, int]) -> tuple[ImageList, Tensor]:
    """The ``ImageList`` and feature grid the anchor generator reads for ``feats`` ``[r, d, h, w]``.

    The generator reads the stride from the padded image size and the anchors' dtype from the feature map:
    zero-stride float32 views of the right sizes (h*16 x w*16 for the image) give exactly stride 16 and float32
    anchors without allocating anything. Under bf16 autocast the features are bf16, and anchors, boxes and
    regression targets in bf16 would be off by up to 4 px at 1000 px (8 bits of mantissa).
    """
    frames, channels, height, width = feats.shape
    zero = feats.new_zeros((), dtype=torch.float32)
    canvas = zero.expand(frames, 3, height * FEATURE_STRIDE, width * FEATURE_STRIDE)
    return ImageList(canvas, [tuple(image_size)] * frames), zero.expand(frames, channels, height, width)
