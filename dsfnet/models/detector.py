"""The DSFNet detector: Faster R-CNN with frame-level and instance-level fusion over a clip (DESIGN §2).

A clip is ``[n, 3, H, W]`` RGB frames in ``[0, 1]`` (the model normalises them), all of one size; one of them
is the key (test) frame, the others are its support frames. The model is permutation-invariant in the support
frames and processes every clip of a batch on its own, so clips of different sizes need no padding.

One head pipeline serves training, ``exact`` and ``cached`` inference and the building of a support memory
(:meth:`DSFNet._heads`): frame fusion → RPN → conv5 / RoIAlign / fc6 → first instance fusion → fc7 → second
instance fusion, where a fusion the variant does not have is a step that is absent. The passes differ only in
which frames are queries and whether a :class:`SupportMemory` is read:

- with instance fusion (``instance``, ``dsfnet``), training and ``exact`` run all n frames of the clip through
  the pipeline together (support frames are re-enhanced with the key frame, as the equations say);
- otherwise (``frame``, ``baseline``) only the key frame runs, reading its support frames' raw conv4 tokens from
  a memory built from the clip;
- ``cached`` runs the test frame alone against a memory built once per support set (:meth:`support_memory`):
  support frames enhanced among themselves, the one approximation of ``cached`` mode. For the ``frame`` variant
  the memory is the same in both modes, so ``cached`` equals ``exact`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from dsfnet.models.backbone import Backbone
from dsfnet.models.fusion import BoxPairs, FrameFusion, FrameMemory, InstanceFusion, InstanceMemory
from dsfnet.models.heads import RoIBoxHead
from dsfnet.models.inputs import as_clips, check_targets
from dsfnet.models.roi import RoIBoxes
from dsfnet.models.rpn import ClipRPN
from dsfnet.models.support import FrameRows

ClipInput = Union[Tensor, Sequence[Union[Tensor, Sequence[Tensor]]]]


@dataclass
class SupportMemory:
    """What a set of support frames gives every test frame that uses them (``cached`` mode, built once).

    Attributes:
        num_frames: the support frames it holds; a test frame may read it without one of them (``exclude``).
        frames: frame fusion's tokens of the frames' raw conv4 (``None`` without frame fusion).
        instances: one memory per instance fusion: the support instances projected by the first fusion, and by
            the second after fusing among themselves and fc7 (empty without instance fusion).
    """

    num_frames: int
    frames: Optional[FrameMemory] = None
    instances: tuple[InstanceMemory, ...] = ()

    def frame(self, index: int) -> "SupportMemory":
        """A one-frame memory of support frame ``index`` (views into this memory's tensors, nothing copied)."""
        frames = self.frames.frame(index) if self.frames is not None else None
        return SupportMemory(1, frames, tuple(stage.frame(index) for stage in self.instances))

    @classmethod
    def join(cls, memories: Sequence["SupportMemory"], into: Optional["SupportMemory"] = None) -> "SupportMemory":
        """The frames of several memories in order, as one memory (a causal memory's frames, each kept alone).

        ``into``: a memory no longer needed whose tensors' storage is reused where it is large enough (a streamed
        memory alternates between two such buffers instead of allocating one per step). It must not share storage
        with ``memories``.
        """
        memories = [memory for memory in memories if memory.num_frames]
        if not memories:
            return cls(0)
        spare = into if into is not None and into.num_frames else None
        frames = None
        if memories[0].frames is not None:
            frames = FrameMemory.join([memory.frames for memory in memories], spare.frames if spare else None)
        stages = zip(*(memory.instances for memory in memories))
        spares = spare.instances if spare else (None,) * len(memories[0].instances)
        instances = tuple(InstanceMemory.join(stage, buffer) for stage, buffer in zip(stages, spares))
        return cls(sum(memory.num_frames for memory in memories), frames, instances)


@dataclass
class _Pass:
    """One run of the head pipeline over ``q`` query frames; each step reads and extends it.

    ``key`` is the row of the key frame among the queries (``None`` while building a memory: every query is a
    support frame); ``record`` collects the instance memories being built; ``own`` (a test frame alone) collects
    what the test frame contributes as a support frame of later ones (:meth:`DSFNet.detect_and_remember`).
    """

    feats: Tensor  # [q, d, h, w]: conv4, then enhanced conv4
    image_size: tuple[int, int]
    key: Optional[int]
    memory: Optional[SupportMemory] = None
    exclude: Optional[int] = None
    target: Optional[dict] = None
    record: Optional[list] = None
    boxes: list[Tensor] = field(default_factory=list)  # RoIs per query frame (with instance fusion: the keys)
    sampled: Optional[Tensor] = None  # training with instance fusion: the key frame's sampled RoIs [r, 4]
    features: Optional[Tensor] = None  # [sum of boxes (+ r), D]
    losses: dict = field(default_factory=dict)
    samples: tuple = ()  # (labels, regression targets) of the key frame's RoIs in training
    pairs: Optional[BoxPairs] = None  # the geometric term, shared by both instance fusions of one test frame
    own: Optional[SupportMemory] = None


class DSFNet(nn.Module):
    """Faster R-CNN + frame-level fusion (eq. 1-3) on conv4 + two instance-level fusions (eq. 4-7) around fc7.

    ``frame_fusion`` / ``instance_fusions`` set to ``None`` give the ``baseline``, ``frame`` and ``instance``
    variants of the paper's ablation.
    """

    def __init__(
        self, num_classes: int, backbone: Backbone, rpn: ClipRPN, box_head: RoIBoxHead, roi: RoIBoxes,
        frame_fusion: Optional[FrameFusion], instance_fusions: Optional[tuple[InstanceFusion, InstanceFusion]],
        support_proposals: int, pixel_mean: Sequence[float], pixel_std: Sequence[float],
    ):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = backbone
        self.frame_fusion = frame_fusion
        self.rpn = rpn
        self.box_head = box_head
        self.roi = roi
        self.instance_fusions = nn.ModuleList(instance_fusions) if instance_fusions is not None else None
        self.support_proposals = support_proposals
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1), persistent=False)

    @property
    def uses_support(self) -> bool:
        """Whether the key frame's output depends on its support frames (not for the baseline)."""
        return self.frame_fusion is not None or self.instance_fusions is not None

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
            per_clip = [self._heads(self._clip_pass(clip, key, target)).losses
                        for clip, target, key in zip(clips, targets, keys)]
            return [], {name: sum(losses[name] for losses in per_clip) / len(per_clip) for name in per_clip[0]}
        if targets is not None:
            check_targets(targets, clips, self.num_classes)
        return [self._detections(self._heads(self._clip_pass(clip, key))) for clip, key in zip(clips, keys)], {}

    def pop_attention_statistics(self) -> dict[str, float]:
        """What the fusions recorded in training since the last call, averaged over their queries:
        ``attention/<fusion>_entropy`` (nats), ``_max_entropy`` (log of the key count: a uniform attention) and
        ``_logit_std`` (a query's logits over its keys), for ``frame``, ``instance1`` and ``instance2``."""
        fusions = [("frame", self.frame_fusion)] if self.frame_fusion is not None else []
        fusions += [(f"instance{stage + 1}", fusion) for stage, fusion in enumerate(self.instance_fusions or ())]
        return {f"attention/{name}_{statistic}": value for name, fusion in fusions
                for statistic, value in fusion.pop_statistics().items()}

    def conv4(self, frames: Tensor) -> Tensor:
        """Frames ``[k, 3, H, W]`` in ``[0, 1]`` -> raw conv4 maps ``[k, d, h, w]``."""
        return self.backbone.conv4((frames - self.pixel_mean) / self.pixel_std)

    def detect_exact(self, conv4: Tensor, image_size: tuple[int, int], key: int = 0) -> dict[str, Tensor]:
        """The network exactly as the equations state, on the conv4 maps ``[n, d, h, w]`` of one clip."""
        return self._detections(self._heads(self._conv4_pass(conv4, image_size, key % conv4.shape[0])))

    def support_memory(self, support_conv4: Tensor, image_size: tuple[int, int]) -> SupportMemory:
        """What test frames need from support frames (raw conv4 ``[s, d, h, w]``), computed once per set.

        Frame fusion keeps the frames' raw tokens; instance fusion runs the support frames through the head
        pipeline among themselves (the ``cached`` approximation) and keeps each fusion's projected instances.
        """
        memory = SupportMemory(len(support_conv4))
        if self.frame_fusion is not None:
            memory.frames = self.frame_fusion.memory(support_conv4)
        if self.instance_fusions is not None and len(support_conv4):
            record: list[InstanceMemory] = []
            self._heads(_Pass(support_conv4, image_size, key=None, record=record))
            memory.instances = tuple(record)
        return memory

    def detect_cached(self, conv4: Tensor, image_size: tuple[int, int], memory: Optional[SupportMemory] = None,
                      exclude: Optional[int] = None) -> dict[str, Tensor]:
        """Detections of one test frame (raw conv4 ``[1, d, h, w]``) fused with a :class:`SupportMemory`, read
        without its support frame ``exclude`` (``None``: all of them)."""
        if memory is not None and not memory.num_frames:
            memory = None
        return self._detections(self._heads(_Pass(conv4, image_size, key=0, memory=memory, exclude=exclude)))

    def detect_and_remember(self, conv4: Tensor, image_size: tuple[int, int],
                            memory: Optional[SupportMemory] = None) -> tuple[dict[str, Tensor], SupportMemory]:
        """:meth:`detect_cached` of one test frame, and from the same pass what the frame contributes as a support
        frame of later test frames (causal inference): a one-frame :class:`SupportMemory` of its raw conv4
        tokens and, per instance fusion, its top ``support_proposals`` instances' keys as this pass projected them
        (enhanced with ``memory`` and itself). Nothing is computed twice."""
        own = SupportMemory(1)
        if self.frame_fusion is not None:
            own.frames = self.frame_fusion.memory(conv4)
        if memory is not None and not memory.num_frames:
            memory = None
        detections = self._detections(self._heads(_Pass(conv4, image_size, key=0, memory=memory, own=own)))
        return detections, own

    # ------------------------------------------------------------------ the head pipeline
    def _clip_pass(self, clip: Tensor, key: int, target: Optional[dict] = None) -> _Pass:
        """The pass of a clip of frames (the backbone runs only on the frames the key frame's output reads)."""
        frames = clip if self.uses_support else clip[key : key + 1]
        return self._conv4_pass(self.conv4(frames), tuple(clip.shape[-2:]), key if self.uses_support else 0,
                                target)

    def _conv4_pass(self, conv4: Tensor, image_size: tuple[int, int], key: int,
                    target: Optional[dict] = None) -> _Pass:
        """With instance fusion all frames are queries; otherwise the key frame alone, reading the others' raw
        conv4 tokens from a memory (the same memory ``cached`` mode builds)."""
        if self.instance_fusions is not None:
            return _Pass(conv4, image_size, key, target=target)
        memory = None
        if self.frame_fusion is not None and conv4.shape[0] > 1:
            memory = self.support_memory(torch.cat([conv4[:key], conv4[key + 1 :]]), image_size)
        return _Pass(conv4[key : key + 1], image_size, 0, memory=memory, target=target)

    def _heads(self, flow: _Pass) -> _Pass:
        """Run the pipeline's steps on ``flow``; a fusion the variant lacks is a step that is not there."""
        steps = [self._enhance] if self.frame_fusion is not None else []
        steps += [self._propose, self._roi_features]
        if self.instance_fusions is None:
            steps.append(self._fc7)
        else:
            steps += [partial(self._fuse_instances, stage=0), self._fc7, partial(self._fuse_instances, stage=1)]
        for step in steps:
            step(flow)
        if flow.target is not None:
            class_logits, box_deltas = self.box_head.predict(flow.features)
            flow.losses.update(self.roi.loss(class_logits, box_deltas, *flow.samples))
        return flow

    def _enhance(self, flow: _Pass) -> None:
        frames = flow.memory.frames if flow.memory is not None else None
        flow.feats = self.frame_fusion.fuse(flow.feats, frames, flow.exclude, flow.own.frames if flow.own else None)

    def _propose(self, flow: _Pass) -> None:
        """Proposals of every query frame (RPN losses of the key frame in training); the key frame keeps all its
        proposals, each support frame its top ``support_proposals`` (DESIGN §2.2). In training the key frame's
        sampled RoIs (ground truth included) are what the losses read: in place of its proposals without
        instance fusion, and as extra queries that are never keys with it (the keys stay proposals, as at test
        time)."""
        proposals, flow.losses = self.rpn(flow.feats, flow.image_size, flow.key, flow.target)
        flow.boxes = [boxes[: self.support_proposals] for boxes in proposals]
        if flow.key is not None:
            flow.boxes[flow.key] = proposals[flow.key]
        if flow.target is not None:
            sampled, *flow.samples = self.roi.select_training_samples(proposals[flow.key], flow.target)
            if self.instance_fusions is None:
                flow.boxes[flow.key] = sampled
            else:
                flow.sampled = sampled

    def _roi_features(self, flow: _Pass) -> None:
        """fc6 features of every RoI. While building a support memory one frame at a time: conv5 maps and RoI
        features of a long support set at once would be the peak memory of ``cached`` inference."""
        if flow.record is None:
            conv5 = self.backbone.conv5(flow.feats)
            flow.features = self.box_head.fc6_features(conv5, flow.boxes)
            if flow.sampled is not None:  # the sampled RoIs' rows last, after all keys
                sampled = self.box_head.fc6_features(conv5[flow.key : flow.key + 1], [flow.sampled])
                flow.features = torch.cat([flow.features, sampled])
            return
        flow.features = torch.cat([self.box_head.fc6_features(self.backbone.conv5(flow.feats[i : i + 1]), [boxes])
                                   for i, boxes in enumerate(flow.boxes)])

    def _fc7(self, flow: _Pass) -> None:
        flow.features = self.box_head.fc7_features(flow.features)

    def _fuse_instances(self, flow: _Pass, stage: int) -> None:
        """Instance fusion ``stage`` (0: after fc6, 1: after fc7). The last stage enhances only the key frame's
        instances; a test frame alone shares one geometric term between both stages (same boxes)."""
        fusion = self.instance_fusions[stage]
        boxes = torch.cat(flow.boxes)
        last = stage == len(self.instance_fusions) - 1
        if flow.record is not None:  # building a support memory: the last stage's keys are all it needs
            flow.record.append(fusion.memory(flow.features, boxes, FrameRows.of_counts(map(len, flow.boxes))))
            if last:
                return
        memory = flow.memory.instances[stage] if flow.memory is not None else None
        if len(flow.boxes) == 1 and memory is not None and fusion.psi is not None and flow.pairs is None:
            flow.pairs = fusion.box_pairs(boxes, memory.key_boxes(boxes, flow.exclude), keep=True)
        query = self._key_rows(flow) if last and (len(flow.boxes) > 1 or flow.sampled is not None) else None
        own = None
        if flow.own is not None:  # a test frame kept as a support frame: its top proposals, as projected here
            own = fusion.memory(flow.features, boxes, FrameRows.of_counts([len(boxes)]))
            flow.own.instances += (own.head(self.support_proposals),)
        num_keys = None
        if flow.sampled is not None:  # training: the sampled RoIs are queries after the keys, never keys
            num_keys = len(boxes)
            boxes = torch.cat([boxes, flow.sampled])
        flow.features = fusion.fuse(flow.features, boxes, memory, flow.exclude, query, flow.pairs, own, num_keys)

    @staticmethod
    def _key_rows(flow: _Pass) -> Tensor:
        """Indices of the rows whose outputs the last stage keeps: the key frame's RoIs among all RoIs of the
        pass, or in training the sampled RoIs (the last rows)."""
        if flow.sampled is not None:
            start = sum(len(boxes) for boxes in flow.boxes)
            return torch.arange(start, start + len(flow.sampled), device=flow.sampled.device)
        start = sum(len(boxes) for boxes in flow.boxes[: flow.key])
        return torch.arange(start, start + len(flow.boxes[flow.key]), device=flow.boxes[flow.key].device)

    def _detections(self, flow: _Pass) -> dict[str, Tensor]:
        class_logits, box_deltas = self.box_head.predict(flow.features)
        return self.roi.postprocess(class_logits, box_deltas, flow.boxes[flow.key], flow.image_size)
