"""Fast R-CNN's box targets and outputs around the RoI head: RoI sampling with regression targets for training,
the classification / box losses, and post-processing into detections (torchvision's rules and building blocks).

What torchvision's ``RoIHeads`` does for its own box head, for one frame (the key frame) and the box head that
the fusions sit inside (``dsfnet.models.heads.RoIBoxHead``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.ops import boxes as box_ops

from dsfnet.config import RoIHeadConfig


class RoIBoxes:
    """RoI sampling, box targets, losses and post-processing of one frame (no parameters)."""

    def __init__(self, config: RoIHeadConfig):
        self.matcher = det_utils.Matcher(config.fg_iou_thresh, config.bg_iou_thresh, allow_low_quality_matches=False)
        self.sampler = det_utils.BalancedPositiveNegativeSampler(config.batch_size_per_image, config.positive_fraction)
        self.box_coder = det_utils.BoxCoder(tuple(config.bbox_reg_weights))
        self.score_thresh, self.nms_thresh = config.score_thresh, config.nms_thresh
        self.detections_per_img = config.detections_per_img

    def select_training_samples(self, proposals: Tensor, target: dict) -> tuple[Tensor, Tensor, Tensor]:
        """Sample RoIs of one frame for training.

        Args:
            proposals: ``float32 [p, 4]``; the ground truth ``target["boxes"] [k, 4]`` is added to them.
        Returns:
            ``(rois [r, 4], labels int64 [r]`` (0 = background), ``regression_targets [r, 4])`` for
            ``batch_size_per_image`` RoIs at most, ``positive_fraction`` of them foreground.
        """
        gt_boxes, gt_labels = target["boxes"].to(proposals.dtype), target["labels"]
        proposals = torch.cat((proposals, gt_boxes))
        if gt_boxes.numel() == 0:  # a background frame: every RoI is background, matched to a dummy box
            matched = torch.zeros(len(proposals), dtype=torch.int64, device=proposals.device)
            labels = torch.zeros(len(proposals), dtype=torch.int64, device=proposals.device)
            gt_boxes = proposals.new_zeros(1, 4)
        else:
            matches = self.matcher(box_ops.box_iou(gt_boxes, proposals))
            matched = matches.clamp(min=0)
            labels = gt_labels[matched].to(torch.int64)
            labels[matches == self.matcher.BELOW_LOW_THRESHOLD] = 0
            labels[matches == self.matcher.BETWEEN_THRESHOLDS] = -1  # ignored by the sampler
        (positive,), (negative,) = self.sampler([labels])
        sampled = torch.where(positive | negative)[0]
        rois, labels, matched = proposals[sampled], labels[sampled], matched[sampled]
        (regression_targets,) = self.box_coder.encode([gt_boxes[matched]], [rois])
        return rois, labels, regression_targets

    @staticmethod
    def loss(class_logits: Tensor, box_deltas: Tensor, labels: Tensor, regression_targets: Tensor
             ) -> dict[str, Tensor]:
        """Fast R-CNN's cross-entropy and smooth-L1 box loss, in float32 (also under autocast)."""
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits.float(), box_deltas.float(), [labels],
                                                      [regression_targets])
        return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

    def postprocess(self, class_logits: Tensor, box_deltas: Tensor, proposals: Tensor,
                    image_size: tuple[int, int]) -> dict[str, Tensor]:
        """Detections of one frame from its RoIs' logits ``[p, C+1]`` and class-specific deltas ``[p, 4(C+1)]``.

        Class-specific boxes clipped to the image, background dropped, scores above ``score_thresh``, boxes
        wider and taller than 0.01 px, per-class NMS, the ``detections_per_img`` best; all in float32.
        Returns ``{"boxes": [N, 4], "labels": int64 [N], "scores": [N]}``, scores descending.
        """
        num_classes = class_logits.shape[-1]
        boxes = self.box_coder.decode(box_deltas.float(), [proposals.float()])
        boxes = box_ops.clip_boxes_to_image(boxes, image_size)[:, 1:].reshape(-1, 4)
        scores = F.softmax(class_logits.float(), -1)[:, 1:]
        labels = torch.arange(num_classes, device=scores.device).view(1, -1).expand(len(scores), -1)[:, 1:]
        scores, labels = scores.reshape(-1), labels.reshape(-1)
        keep = torch.where(scores > self.score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
        return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}
