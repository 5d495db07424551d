"""The DSFNet detector: Faster R-CNN with frame-level and instance-level fusion over a clip (DESIGN §2).

A clip is ``[n, 3, H, W]`` RGB frames in ``[0, 1]`` (the model normalises them), all of one size; one of them
is the key (test) frame, the others are its support frames. The model is permutation-invariant in the support
frames and processes every clip of a batch on its own, so clips of different sizes need no padding.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss

from dsfnet.config import ModelConfig
from dsfnet.models.backbone import Backbone
from dsfnet.models.fusion import FrameFusion, InstanceFusion
from dsfnet.models.heads import RoIBoxHead, propose
from dsfnet.models.inputs import as_clips, check_targets

ClipInput = Union[Tensor, Sequence[Union[Tensor, Sequence[Tensor]]]]


@dataclass
class SupportCache:
    """What a test frame needs from its support frames in ``cached`` mode (computed once per video).

    Attributes:
        frame_keys, frame_values: ``[s*d, h*w]`` frame-fusion tokens of the s support frames' raw conv4.
        token_frames: ``int64 [s*d]``, the support frame (0..s-1) of each token.
        boxes: ``[M, 4]`` proposals of all support frames.
        keys1, values1: support instances projected by the first instance fusion (``[H, M, dk]``, ``[M, D]``).
        keys2, values2: the same for the second fusion, from the support instances fused among themselves.
        instance_frames: ``int64 [M]``, the support frame (0..s-1) of each instance.
        left_out: a support frame (0..s-1) whose tokens and instances test frames do not read, or ``None``.
    """

    frame_keys: Optional[Tensor] = None
    frame_values: Optional[Tensor] = None
    token_frames: Optional[Tensor] = None
    boxes: Optional[Tensor] = None
    keys1: Optional[Tensor] = None
    values1: Optional[Tensor] = None
    keys2: Optional[Tensor] = None
    values2: Optional[Tensor] = None
    instance_frames: Optional[Tensor] = None
    left_out: Optional[int] = None

    @staticmethod
    def join(frames: Sequence["SupportCache"]) -> "SupportCache":
        """One cache of several one-frame caches (support frame i = ``frames[i]``), rows concatenated in order."""
        if not frames:
            return SupportCache()
        joined = SupportCache()
        for name in ("frame_keys", "frame_values", "boxes", "values1", "values2"):
            if getattr(frames[0], name) is not None:
                setattr(joined, name, torch.cat([getattr(frame, name) for frame in frames]))
        for name in ("keys1", "keys2"):  # [H, m, dk]: instances on dim 1
            if getattr(frames[0], name) is not None:
                setattr(joined, name, torch.cat([getattr(frame, name) for frame in frames], dim=1))
        for name in ("token_frames", "instance_frames"):
            if getattr(frames[0], name) is not None:
                setattr(joined, name, torch.cat([getattr(frame, name) + i for i, frame in enumerate(frames)]))
        return joined

    def without(self, frame: int) -> "SupportCache":
        """The cache with support frame ``frame`` (its position in the support list) left out.

        Lets a video's test frames that are themselves support frames reuse one cache instead of building their
        own. Nothing is copied: a frame's tokens and instances are contiguous rows (:meth:`left_out_rows`); the
        test frame's frame fusion masks its tokens, its instance fusion reads the instances around them
        (:meth:`kept_rows`). Frame-level fusion then equals that over the remaining
        frames exactly; the remaining instances keep their fusion among the full support set (the ``cached``
        approximation).
        """
        if self.left_out is not None:
            raise ValueError(f"support frame {self.left_out} is already left out of this cache")
        return replace(self, left_out=frame)

    def left_out_rows(self, frames: Tensor) -> Optional[slice]:
        """The rows of the left-out frame in a frame-major tensor whose rows belong to ``frames``
        (``token_frames`` or ``instance_frames``); ``None`` when no frame is left out."""
        rows = torch.nonzero(frames == self.left_out).flatten() if self.left_out is not None else frames[:0]
        return slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else None

    def kept_rows(self, frames: Tensor) -> list[slice]:
        """Non-empty row ranges around :meth:`left_out_rows` (at most two slices)."""
        left_out = self.left_out_rows(frames)
        if left_out is None:
            return [slice(0, len(frames))]
        ranges = [slice(0, left_out.start), slice(left_out.stop, len(frames))]
        return [rows_range for rows_range in ranges if rows_range.stop > rows_range.start]


class DSFNet(nn.Module):
    """Faster R-CNN + frame-level fusion (eq. 1-3) on conv4 + two instance-level fusions (eq. 4-7) around fc7.

    ``frame_fusion`` / ``instance_fusions`` set to ``None`` give the ``baseline``, ``frame`` and ``instance``
    variants of the paper's ablation.
    """

    def __init__(
        self, config: ModelConfig, backbone: Backbone, rpn: nn.Module, box_head: RoIBoxHead,
        frame_fusion: Optional[FrameFusion], instance_fusions: Optional[tuple[InstanceFusion, InstanceFusion]],
    ):
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.backbone = backbone
        self.frame_fusion = frame_fusion
        self.rpn = rpn
        self.box_head = box_head
        self.instance_fusions = nn.ModuleList(instance_fusions) if instance_fusions is not None else None
        roi = config.roi
        # torchvision's RoIHeads used for its RoI sampling and post-processing only (the box head is ours)
        self.roi_sampler = RoIHeads(
            None, None, None, roi.fg_iou_thresh, roi.bg_iou_thresh, roi.batch_size_per_image,
            roi.positive_fraction, tuple(roi.bbox_reg_weights), roi.score_thresh, roi.nms_thresh,
            roi.detections_per_img,
        )
        self.support_proposals = config.instance_fusion.support_proposals
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ public API
    def forward(
        self, clips: ClipInput, targets: Optional[Union[dict, Sequence[dict]]] = None, key: int = 0,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Run on a batch of clips.

        Args:
            clips: one clip ``[n, 3, H, W]``, a batch ``[B, n, 3, H, W]``, or a list of clips (each a tensor
                ``[n_i, 3, H_i, W_i]`` or a list of ``[3, H_i, W_i]`` frames); values in ``[0, 1]``.
            targets: key-frame ground truth, a dict (one clip) or one dict per clip, with ``boxes``
                ``float [k, 4]`` (x1, y1, x2, y2 in input pixels) and ``labels`` ``int64 [k]`` in ``1..C``.
                Required in training mode.
            key: index of the key (test) frame inside each clip; negative values count from the end, as in
                Python (-1 is the last frame of each clip).

        Returns:
            ``(detections, losses)``. In eval mode, detections has one dict per clip with the key frame's
            ``boxes [N, 4]`` (input pixels), ``labels [N]`` and ``scores [N]``, and losses is empty. In training
            mode detections is empty and losses holds ``loss_objectness``, ``loss_rpn_box_reg``,
            ``loss_classifier`` and ``loss_box_reg`` averaged over clips.
        """
        clips = as_clips(clips, key)
        keys = [key % len(clip) for clip in clips]  # Python-style: -1 is each clip's last frame
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            targets = check_targets(targets, clips, self.num_classes)
            per_clip = [self._losses(clip, target, key) for clip, target, key in zip(clips, targets, keys)]
            return [], {name: sum(losses[name] for losses in per_clip) / len(per_clip) for name in per_clip[0]}
        if targets is not None:
            check_targets(targets, clips, self.num_classes)
        detections = []
        for clip, key in zip(clips, keys):
            conv4, key_in_conv4 = self._needed_conv4(clip, key)
            detections.append(self.detect_exact(conv4, tuple(clip.shape[-2:]), key_in_conv4))
        return detections, {}

    def conv4(self, frames: Tensor) -> Tensor:
        """Frames ``[k, 3, H, W]`` in ``[0, 1]`` -> raw conv4 maps ``[k, d, h, w]``."""
        return self.backbone.conv4((frames - self.pixel_mean) / self.pixel_std)

    def detect_exact(self, conv4: Tensor, image_size: tuple[int, int], key: int = 0) -> dict[str, Tensor]:
        """The network exactly as the equations state, on the conv4 maps ``[n, d, h, w]`` of one clip."""
        key = key % conv4.shape[0]
        rows = self._rows_needed(conv4.shape[0], key)
        enhanced = self._enhance(conv4, rows)
        key_row = rows.index(key)
        proposals, _ = propose(self.rpn, enhanced, image_size)
        # support frames contribute their top instance_fusion.support_proposals, as in training and cached mode
        proposals = [boxes if row == key_row else boxes[: self.support_proposals]
                     for row, boxes in enumerate(proposals)]
        features = self.box_head.fc6_features(self.backbone.conv5(enhanced), proposals)
        if self.instance_fusions is not None:
            boxes = torch.cat(proposals)
            features = self.instance_fusions[0](features, boxes)
            features = self.box_head.fc7_features(features)
            key_index = self._frame_slice(proposals, key_row)
            features = self.instance_fusions[1](features, boxes, key_index)
        else:
            features = self.box_head.fc7_features(features)
        return self._postprocess(features, proposals[key_row], image_size)

    def build_support_cache(self, support_conv4: Tensor, image_size: tuple[int, int]) -> SupportCache:
        """Precompute, once per video, what test frames need from the support frames' raw conv4 ``[s, d, h, w]``.

        Support frames are enhanced among themselves (not re-enhanced by each test frame): this is the one
        approximation of ``cached`` mode; the test frame's own fusion reads the support frames' raw conv4, so
        the ``frame`` variant gives exactly the ``exact`` result.
        """
        cache = SupportCache()
        frames = support_conv4.shape[0]
        if frames == 0:
            return cache
        if self.frame_fusion is not None:
            cache.frame_keys, cache.frame_values = self.frame_fusion.keys_values(support_conv4)
            positions = torch.arange(frames, device=support_conv4.device)
            cache.token_frames = positions.repeat_interleave(support_conv4.shape[1])
        if self.instance_fusions is None:
            return cache
        enhanced = support_conv4
        if self.frame_fusion is not None:
            enhanced = self.frame_fusion.fuse(support_conv4, [(cache.frame_keys, cache.frame_values)])
        proposals, _ = propose(self.rpn, enhanced, image_size)
        proposals = [boxes[: self.support_proposals] for boxes in proposals]
        cache.boxes = torch.cat(proposals)
        cache.instance_frames = torch.cat([torch.full((len(boxes),), frame, device=cache.boxes.device)
                                           for frame, boxes in enumerate(proposals)])
        # one frame at a time: conv5 maps and RoI features of all support frames at once would be the peak memory
        features = torch.cat([self.box_head.fc6_features(self.backbone.conv5(enhanced[i : i + 1]), [boxes])
                              for i, boxes in enumerate(proposals)])
        first, second = self.instance_fusions
        cache.keys1, cache.values1 = first.project_keys(features)
        features = first.attend(features, cache.boxes, cache.keys1, cache.values1, cache.boxes)
        cache.keys2, cache.values2 = second.project_keys(self.box_head.fc7_features(features))
        return cache

    def detect_cached(self, conv4: Tensor, cache: SupportCache, image_size: tuple[int, int],
                      own: Optional[SupportCache] = None) -> dict[str, Tensor]:
        """Detections of one test frame (raw conv4 ``[1, d, h, w]``) fused with a :class:`SupportCache`.

        ``own``: a :class:`SupportCache` to fill with what this frame contributes as a support frame of later test
        frames (causal inference), as a by-product of its own test: the tokens of its raw conv4 and, per instance
        fusion, the keys / values of its top ``instance_fusion.support_proposals`` proposals as this pass
        computed them (enhanced with ``cache`` and itself).
        """
        enhanced = conv4
        if self.frame_fusion is not None:
            blocks, left_out = [self.frame_fusion.keys_values(conv4)], None
            if own is not None:
                own.frame_keys, own.frame_values = blocks[0]
                own.token_frames = torch.zeros(len(blocks[0][0]), dtype=torch.long, device=conv4.device)
            if cache.frame_keys is not None:
                blocks.insert(0, (cache.frame_keys, cache.frame_values))
                left_out = cache.left_out_rows(cache.token_frames)
            enhanced = self.frame_fusion.fuse(conv4, blocks, left_out)
        proposals, _ = propose(self.rpn, enhanced, image_size)
        features = self.box_head.fc6_features(self.backbone.conv5(enhanced), proposals)
        if self.instance_fusions is not None:
            features = self._fuse_test_instances(features, proposals[0], cache, own)
        else:
            features = self.box_head.fc7_features(features)
        return self._postprocess(features, proposals[0], image_size)

    def _fuse_test_instances(self, features: Tensor, boxes: Tensor, cache: SupportCache,
                             own: Optional[SupportCache]) -> Tensor:
        """Both instance fusions of one test frame's RoIs (fc6 ``[m, D]`` -> fused fc7 ``[m, D]``) against the
        cache and themselves; fills ``own`` with the top ``support_proposals`` rows of its keys and values."""
        kept = [slice(None)] if cache.boxes is None else cache.kept_rows(cache.instance_frames)
        all_boxes = _cat_kept(cache.boxes, kept, boxes)
        # both stages see the same boxes: their geometric term is computed once (the model's fusions share
        # embed_freqs, eps and chunk_size, all from one config)
        pairs = self.instance_fusions[0].box_pairs(boxes, all_boxes, keep=True)
        cached = ((cache.keys1, cache.values1), (cache.keys2, cache.values2))
        top = slice(0, self.support_proposals)  # proposals come sorted by objectness
        for stage, (fusion, (cached_keys, cached_values)) in enumerate(zip(self.instance_fusions, cached)):
            if stage == 1:
                features = self.box_head.fc7_features(features)
            own_keys, own_values = fusion.project_keys(features)
            if own is not None:
                own.boxes = boxes[top]
                own.instance_frames = torch.zeros(len(own.boxes), dtype=torch.long, device=boxes.device)
                setattr(own, f"keys{stage + 1}", own_keys[:, top])
                setattr(own, f"values{stage + 1}", own_values[top])
            keys = _cat_kept(cached_keys, kept, own_keys, dim=1)  # [H, m, dk]: instances on dim 1
            features = fusion.attend(features, boxes, keys, _cat_kept(cached_values, kept, own_values), all_boxes,
                                     pairs)
        return features

    # ------------------------------------------------------------------ internals
    def _needed_conv4(self, clip: Tensor, key: int) -> tuple[Tensor, int]:
        """conv4 of the frames the key frame's output depends on (only the key frame for the baseline)."""
        if self.frame_fusion is None and self.instance_fusions is None:
            return self.conv4(clip[key : key + 1]), 0
        return self.conv4(clip), key

    def _rows_needed(self, frames: int, key: int) -> list[int]:
        """Frames whose enhanced conv4 the output depends on: all of them only with instance fusion."""
        return list(range(frames)) if self.instance_fusions is not None else [key]

    def _enhance(self, conv4: Tensor, rows: list[int]) -> Tensor:
        """Frame-level fusion of ``rows`` against all frames (``[len(rows), d, h, w]``)."""
        if self.frame_fusion is None:
            return conv4[rows]
        return self.frame_fusion(conv4, query_frames=rows)

    @staticmethod
    def _frame_slice(proposals: list[Tensor], row: int) -> Tensor:
        """Indices into the concatenated proposals of frame ``row``."""
        start = sum(len(boxes) for boxes in proposals[:row])
        return torch.arange(start, start + len(proposals[row]), device=proposals[row].device)

    def _losses(self, clip: Tensor, target: dict, key: int) -> dict[str, Tensor]:
        image_size = tuple(clip.shape[-2:])
        conv4, key = self._needed_conv4(clip, key)
        rows = self._rows_needed(conv4.shape[0], key)
        enhanced = self._enhance(conv4, rows)
        key_row = rows.index(key)
        proposals, losses = propose(self.rpn, enhanced, image_size, key_row, target)
        sampled, _, labels, regression_targets = self.roi_sampler.select_training_samples(
            [proposals[key_row]], [target])
        # the key frame contributes its sampled RoIs, each support frame its top proposals (DESIGN §2.2)
        boxes = [sampled[0] if row == key_row else proposals[row][: self.support_proposals]
                 for row in range(len(rows))]
        features = self.box_head.fc6_features(self.backbone.conv5(enhanced), boxes)
        if self.instance_fusions is not None:
            all_boxes = torch.cat(boxes)
            features = self.instance_fusions[0](features, all_boxes)
            features = self.instance_fusions[1](self.box_head.fc7_features(features), all_boxes)
            features = features[self._frame_slice(boxes, key_row)]
        else:
            features = self.box_head.fc7_features(features)
        class_logits, box_deltas = self.box_head.predict(features)
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits.float(), box_deltas.float(), labels,
                                                      regression_targets)
        losses.update(loss_classifier=loss_classifier, loss_box_reg=loss_box_reg)
        return losses

    def _postprocess(self, features: Tensor, proposals: Tensor, image_size: tuple[int, int]) -> dict[str, Tensor]:
        class_logits, box_deltas = self.box_head.predict(features)
        boxes, scores, labels = self.roi_sampler.postprocess_detections(
            class_logits.float(), box_deltas.float(), [proposals.float()], [image_size])
        return {"boxes": boxes[0], "labels": labels[0], "scores": scores[0]}


def _cat_kept(cached: Optional[Tensor], kept: list[slice], own: Tensor, dim: int = 0) -> Tensor:
    """The ``kept`` row ranges of ``cached`` along ``dim``, then ``own`` (just ``own`` without a cache)."""
    if cached is None:
        return own
    index = (slice(None),) * dim
    return torch.cat([cached[index + (rows,)] for rows in kept] + [own], dim=dim)
