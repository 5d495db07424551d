"""The DSFNet detector: Faster R-CNN with frame-level and instance-level fusion over a clip (DESIGN §2).

A clip is ``[n, 3, H, W]`` RGB frames in ``[0, 1]`` (the model normalises them), all of one size; one of them
is the key (test) frame, the others are its support frames. The model is permutation-invariant in the support
frames and processes every clip of a batch on its own, so clips of different sizes need no padding.

One head pipeline, :meth:`DSFNet._run`, serves training, ``exact``, ``cached`` and causal inference and the
building of a support memory, read top to bottom: frame fusion → RPN → RoIs → conv5 / RoIAlign / fc6 → first
instance fusion → fc7 → second instance fusion (→ losses). A :class:`PassSpec`, fixed before the pass, says
which query frames run, which is the key frame, which :class:`SupportMemory` they read and what the pass is
for (its ``mode``); the pass returns a :class:`PassState`. The passes differ only in their specification:

- with instance fusion (``instance``, ``dsfnet``), training and ``exact`` run all n frames of the clip through
  the pipeline together (support frames are re-enhanced with the key frame, as the equations say);
- otherwise (``frame``, ``baseline``) only the key frame runs, reading its support frames' raw conv4 tokens from
  a memory built from the clip;
- ``cached`` runs the test frame alone against a memory built once per support set (:meth:`support_memory`):
  support frames enhanced among themselves, the one approximation of ``cached`` mode. For the ``frame`` variant
  the memory is the same in both modes, so ``cached`` equals ``exact`` bit for bit;
- causal inference (``remember``) is ``cached`` that also keeps what the test frame contributes as a support
  frame of later ones.

The fusions and the RoI box head are called as modules, so forward hooks see their inputs (``dsfnet.diagnostics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Union

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


#: What a pass is for: ``train`` (the key frame's losses), ``detect`` (its detections), ``remember`` (its
#: detections and what it contributes as a support frame of later test frames), ``memory`` (every query is a
#: support frame: build their :class:`SupportMemory`)
Mode = Literal["train", "detect", "remember", "memory"]


@dataclass(frozen=True)
class PassSpec:
    """What one run of the head pipeline over ``q`` query frames computes, fixed before it starts.

    Attributes:
        mode: see :data:`Mode`.
        key: the row of the key frame among the queries (``None`` exactly in ``memory`` mode).
        memory: support frames the queries read besides themselves (``None``: they attend among themselves).
        exclude: a frame of ``memory`` left out (the test frame is itself one of its frames).
        target: the key frame's ground truth (exactly in ``train`` mode).
    """

    mode: Mode
    key: Optional[int] = 0
    memory: Optional[SupportMemory] = None
    exclude: Optional[int] = None
    target: Optional[dict] = None

    def __post_init__(self):
        if (self.key is None) != (self.mode == "memory") or (self.target is not None) != (self.mode == "train"):
            raise ValueError(f"inconsistent pass specification: {self.mode} with key={self.key}, "
                             f"target {'given' if self.target is not None else 'missing'}")


@dataclass
class PassState:
    """What a pass produces.

    Attributes:
        key_boxes: the key frame's RoIs ``[k, 4]`` (``None`` in ``memory`` mode).
        features: RoI features ``[m, D]`` after the last step: outside ``memory`` mode the rows of ``key_boxes``
            (in training with instance fusion: of the sampled RoIs), the RoIs the predictor reads.
        losses: the RPN's and the box head's losses (``train`` mode).
        contributed: ``memory`` / ``remember`` mode: what the query frames give later test frames as support
            frames (their raw conv4 tokens; per instance fusion their instances as the pass projected them).
    """

    key_boxes: Optional[Tensor]
    features: Tensor
    losses: dict[str, Tensor]
    contributed: Optional[SupportMemory] = None


@dataclass
class _RoIs:
    """The RoIs both instance fusions of one pass read: ``boxes`` per query frame (the keys), in training the key
    frame's sampled RoIs ``[r, 4]`` (extra queries, never keys), and the geometric term of a test frame alone,
    computed once for both fusions (same boxes)."""

    boxes: list[Tensor]
    sampled: Optional[Tensor] = None
    pairs: Optional[BoxPairs] = None


class DSFNet(nn.Module):
    """Faster R-CNN + frame-level fusion (eq. 1-3) on conv4 + two instance-level fusions (eq. 4-7) around fc7.

    ``frame_fusion`` / ``instance_fusions`` set to ``None`` give the ``baseline``, ``frame`` and ``instance``
    variants of the paper's ablation.
    """

    def __init__(
        self, *, num_classes: int, backbone: Backbone, rpn: ClipRPN, box_head: RoIBoxHead, roi: RoIBoxes,
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
            per_clip = [self._clip(clip, key, target).losses for clip, target, key in zip(clips, targets, keys)]
            return [], {name: sum(losses[name] for losses in per_clip) / len(per_clip) for name in per_clip[0]}
        if targets is not None:
            check_targets(targets, clips, self.num_classes)
        return [self._detections(self._clip(clip, key), tuple(clip.shape[-2:])) for clip, key in zip(clips, keys)], {}

    def pop_attention_statistics(self) -> dict[str, float]:
        """What the fusions recorded in training since the last call, averaged over their queries:
        ``attention/<fusion>_entropy`` (nats), ``_max_entropy`` (log of the key count: a uniform attention) and
        ``_logit_std`` (a query's logits over its keys), for ``frame``, ``instance1`` and ``instance2``; and where
        the frame fusion's value projection θ stands, ``attention/frame_value_diagonal`` and ``_value_norm``."""
        fusions = [("frame", self.frame_fusion)] if self.frame_fusion is not None else []
        fusions += [(f"instance{stage + 1}", fusion) for stage, fusion in enumerate(self.instance_fusions or ())]
        return {f"attention/{name}_{statistic}": value for name, fusion in fusions
                for statistic, value in fusion.pop_statistics().items()}

    def conv4(self, frames: Tensor) -> Tensor:
        """Frames ``[k, 3, H, W]`` in ``[0, 1]`` -> raw conv4 maps ``[k, d, h, w]``."""
        return self.backbone.conv4((frames - self.pixel_mean) / self.pixel_std)

    def detect_exact(self, conv4: Tensor, image_size: tuple[int, int], key: int = 0) -> dict[str, Tensor]:
        """The network exactly as the equations state, on the conv4 maps ``[n, d, h, w]`` of one clip."""
        return self._detections(self._exact(conv4, image_size, key % conv4.shape[0]), image_size)

    def support_memory(self, support_conv4: Tensor, image_size: tuple[int, int]) -> SupportMemory:
        """What test frames need from support frames (raw conv4 ``[s, d, h, w]``), computed once per set.

        Frame fusion keeps the frames' raw tokens; instance fusion runs the support frames through the head
        pipeline among themselves (the ``cached`` approximation) and keeps each fusion's projected instances.
        """
        if self.instance_fusions is None or not len(support_conv4):
            return self._raw_memory(support_conv4)
        return self._run(PassSpec("memory", key=None), support_conv4, image_size).contributed

    def detect_cached(self, conv4: Tensor, image_size: tuple[int, int], memory: Optional[SupportMemory] = None,
                      exclude: Optional[int] = None) -> dict[str, Tensor]:
        """Detections of one test frame (raw conv4 ``[1, d, h, w]``) fused with a :class:`SupportMemory`, read
        without its support frame ``exclude`` (``None``: all of them)."""
        spec = PassSpec("detect", memory=_non_empty(memory), exclude=exclude)
        return self._detections(self._run(spec, conv4, image_size), image_size)

    def detect_and_remember(self, conv4: Tensor, image_size: tuple[int, int],
                            memory: Optional[SupportMemory] = None) -> tuple[dict[str, Tensor], SupportMemory]:
        """:meth:`detect_cached` of one test frame, and from the same pass what the frame contributes as a support
        frame of later test frames (causal inference): a one-frame :class:`SupportMemory` of its raw conv4
        tokens and, per instance fusion, its top ``support_proposals`` instances' keys as this pass projected them
        (enhanced with ``memory`` and itself). Nothing is computed twice."""
        state = self._run(PassSpec("remember", memory=_non_empty(memory)), conv4, image_size)
        return self._detections(state, image_size), state.contributed

    # ------------------------------------------------------------------ the passes
    def _clip(self, clip: Tensor, key: int, target: Optional[dict] = None) -> PassState:
        """The pass of a clip of frames (the backbone runs only on the frames the key frame's output reads)."""
        if not self.uses_support:
            clip, key = clip[key : key + 1], 0
        return self._exact(self.conv4(clip), tuple(clip.shape[-2:]), key, target)

    def _exact(self, conv4: Tensor, image_size: tuple[int, int], key: int, target: Optional[dict] = None
               ) -> PassState:
        """The pass of a clip's conv4 maps ``[n, d, h, w]``: with instance fusion all frames are queries;
        otherwise the key frame alone, reading the others' raw conv4 tokens from a memory (the memory ``cached``
        mode builds)."""
        mode = "train" if target is not None else "detect"
        if self.instance_fusions is not None:
            return self._run(PassSpec(mode, key, target=target), conv4, image_size)
        memory = None
        if self.frame_fusion is not None and conv4.shape[0] > 1:
            memory = self.support_memory(torch.cat([conv4[:key], conv4[key + 1 :]]), image_size)
        return self._run(PassSpec(mode, memory=memory, target=target), conv4[key : key + 1], image_size)

    # ------------------------------------------------------------------ the head pipeline
    def _run(self, spec: PassSpec, conv4: Tensor, image_size: tuple[int, int]) -> PassState:
        """The head pipeline on the raw conv4 maps ``[q, d, h, w]`` of the query frames, as ``spec`` says."""
        contributed = self._raw_memory(conv4) if spec.mode in ("memory", "remember") else None
        feats = conv4
        if self.frame_fusion is not None:  # eq. 1-3; a remembered frame's own tokens are projected once
            own = contributed.frames if spec.mode == "remember" else None
            feats = self.frame_fusion(feats, spec.memory.frames if spec.memory else None, exclude=spec.exclude,
                                      own=own)
        proposals, losses = self.rpn(feats, image_size, spec.key, spec.target)
        rois, samples = self._rois(spec, proposals)
        features = self._fc6(spec, feats, rois)
        if self.instance_fusions is None:
            features = self.box_head.fc7_features(features)
        else:  # eq. 4-7 after fc6 and after fc7
            rois.pairs = self._shared_pairs(spec, rois)
            features = self._fuse_instances(0, spec, rois, features, contributed)
            features = self.box_head.fc7_features(features)
            features = self._fuse_instances(1, spec, rois, features, contributed)
        if spec.mode == "train":
            losses.update(self.roi.loss(*self.box_head.predict(features), *samples))
        key_boxes = rois.boxes[spec.key] if spec.key is not None else None
        return PassState(key_boxes, features, losses, contributed)

    def _raw_memory(self, conv4: Tensor) -> SupportMemory:
        """A memory of frames' raw conv4 ``[s, d, h, w]`` alone: frame fusion's tokens, no instances yet."""
        frames = self.frame_fusion.memory(conv4) if self.frame_fusion is not None else None
        return SupportMemory(len(conv4), frames)

    def _rois(self, spec: PassSpec, proposals: list[Tensor]) -> tuple[_RoIs, tuple]:
        """The RoIs of every query frame: the key frame keeps all its proposals, each support frame its top
        ``support_proposals`` (DESIGN §2.2). In training the key frame's sampled RoIs (ground truth included) are
        what the losses read: in place of its proposals without instance fusion, and as extra queries that are
        never keys with it (the keys stay proposals, as at test time). Returns the RoIs and, in training, the
        sampled RoIs' (labels, regression targets)."""
        rois = _RoIs([boxes[: self.support_proposals] for boxes in proposals])
        if spec.key is not None:
            rois.boxes[spec.key] = proposals[spec.key]
        if spec.mode != "train":
            return rois, ()
        sampled, *samples = self.roi.select_training_samples(proposals[spec.key], spec.target)
        if self.instance_fusions is None:
            rois.boxes[spec.key] = sampled
        else:
            rois.sampled = sampled
        return rois, tuple(samples)

    def _fc6(self, spec: PassSpec, feats: Tensor, rois: _RoIs) -> Tensor:
        """fc6 features ``[Σ p_i (+ r), D]`` of every RoI (the sampled RoIs' rows last, after all keys). While
        building a support memory one frame at a time: conv5 maps and RoI features of a long support set at once
        would be the peak memory of ``cached`` inference."""
        if spec.mode == "memory":
            return torch.cat([self.box_head(self.backbone.conv5(feats[i : i + 1]), [boxes])
                              for i, boxes in enumerate(rois.boxes)])
        conv5 = self.backbone.conv5(feats)
        features = self.box_head(conv5, rois.boxes)
        if rois.sampled is None:
            return features
        return torch.cat([features, self.box_head(conv5[spec.key : spec.key + 1], [rois.sampled])])

    def _shared_pairs(self, spec: PassSpec, rois: _RoIs) -> Optional[BoxPairs]:
        """The geometric term of a test frame alone against a memory, shared by both instance fusions (their
        keys have the same boxes); ``None`` where each fusion computes its own."""
        fusion = self.instance_fusions[0]
        if len(rois.boxes) != 1 or spec.memory is None or fusion.psi is None:
            return None
        boxes = torch.cat(rois.boxes)
        return fusion.box_pairs(boxes, spec.memory.instances[0].key_boxes(boxes, spec.exclude), keep=True)

    def _fuse_instances(self, stage: int, spec: PassSpec, rois: _RoIs, features: Tensor,
                        contributed: Optional[SupportMemory]) -> Tensor:
        """Instance fusion ``stage`` (0: after fc6, 1: after fc7) of ``features [m, D]``. The last stage enhances
        only the key frame's instances (in training: the sampled RoIs). What the queries contribute as support
        frames is added to ``contributed`` as this stage projects them."""
        fusion = self.instance_fusions[stage]
        boxes = torch.cat(rois.boxes)
        last = stage == len(self.instance_fusions) - 1
        if spec.mode == "memory":  # building a support memory: the last stage's keys are all it needs
            contributed.instances += (fusion.memory(features, boxes, FrameRows.of_counts(map(len, rois.boxes))),)
            if last:
                return features
        own = None
        if spec.mode == "remember":  # a test frame kept as a support frame: its top proposals, as projected here
            own = fusion.memory(features, boxes, FrameRows.of_counts([len(boxes)]))
            contributed.instances += (own.head(self.support_proposals),)
        query = self._key_rows(spec, rois) if last and (len(rois.boxes) > 1 or rois.sampled is not None) else None
        num_keys = None
        if rois.sampled is not None:  # training: the sampled RoIs are queries after the keys, never keys
            num_keys = len(boxes)
            boxes = torch.cat([boxes, rois.sampled])
        memory = spec.memory.instances[stage] if spec.memory is not None else None
        return fusion(features, boxes, memory, exclude=spec.exclude, query_index=query, pairs=rois.pairs, own=own,
                      num_keys=num_keys)

    @staticmethod
    def _key_rows(spec: PassSpec, rois: _RoIs) -> Tensor:
        """Indices of the rows whose outputs the last stage keeps: the key frame's RoIs among all RoIs of the
        pass, or in training the sampled RoIs (the last rows)."""
        if rois.sampled is not None:
            start = sum(len(boxes) for boxes in rois.boxes)
            return torch.arange(start, start + len(rois.sampled), device=rois.sampled.device)
        start = sum(len(boxes) for boxes in rois.boxes[: spec.key])
        return torch.arange(start, start + len(rois.boxes[spec.key]), device=rois.boxes[spec.key].device)

    def _detections(self, state: PassState, image_size: tuple[int, int]) -> dict[str, Tensor]:
        """The key frame's detections: ``boxes [N, 4]``, ``labels [N]``, ``scores [N]`` in input pixels."""
        class_logits, box_deltas = self.box_head.predict(state.features)
        return self.roi.postprocess(class_logits, box_deltas, state.key_boxes, image_size)


def _non_empty(memory: Optional[SupportMemory]) -> Optional[SupportMemory]:
    """``memory``, or ``None`` for a memory of no frames (a test frame without support frames)."""
    return memory if memory is not None and memory.num_frames else None
