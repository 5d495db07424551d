"""``VideoPredictor``: streamed video inference with DSFNet, ``cached`` or ``exact`` (DESIGN §4).

A stateful object beside the pure ``nn.Module`` (like SAM's predictor)::

    predictor = VideoPredictor(model, config, score_thresh=0.3)
    for result in predictor.predict("clip.mp4"):      # a video file, a folder of frames, a list of image paths
        print(result.index, result.boxes, result.class_names, result.scores)

The predictor is thin; the work is in small parts:

- ``dsfnet.inference.plan``: which support frames each test frame uses, and which support memory serves it
  (``shuffled``: one memory of the ≤ n frames of the global set and its substitute, each test frame reading it
  without one frame; ``stride``: a memory per test frame);
- ``dsfnet.inference.window``: which frames' conv4 maps are kept and when they are dropped (memory does not grow
  with the video's length);
- ``dsfnet.inference.geometry``: the video's one resize scale (``data.min_size`` / ``data.max_size``);
- ``dsfnet.inference.causal``: the streamed plans, one :class:`~dsfnet.inference.causal.Step` per test frame with
  the frames that enter and leave a bounded memory (``causal``: past frames only, ``recent`` or ``spread``;
  ``shuffled_window``: a window sliding over a shuffled order);
- the model: ``conv4`` once per frame, ``support_memory`` once per support set, ``detect_cached`` per test frame
  (``cached``), or ``detect_exact`` on the clip [support conv4…, test conv4] (``exact``: the full network after
  the backbone, whose per-frame conv4 is computed once and reused). In streamed plans a frame's contribution as a
  support frame is a by-product of its own test (``detect_and_remember``), kept until it leaves the memory.

How a video is processed: open the source and count its frames (one decode pass for video files); decode the
plan's pinned frames in a first pass that stops at the last one; then stream all frames in order, decoding ahead
only as far as a test frame's support needs, and yield one :class:`FrameResult` per frame.

For the ``frame`` variant ``cached`` and ``exact`` give the same bits (the test frame's fusion reads the support
frames' raw conv4 tokens, frame by frame in the same order, either way). For ``instance``/``dsfnet`` they differ:
in ``cached`` the support instances are fused among the support frames only, not re-enhanced with each test
frame.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from dsfnet.config import Config, check_test, class_names as config_class_names
from dsfnet.engine.checkpoint import load_model
from dsfnet.inference.causal import Step, causal_steps, make_memory, shuffled_window_steps
from dsfnet.inference.geometry import Geometry
from dsfnet.inference.plan import SupportPlan, plan_support
from dsfnet.inference.video_io import FrameSource, open_source
from dsfnet.inference.window import FeatureWindow
from dsfnet.models.detector import SupportMemory

logger = logging.getLogger(__name__)


@dataclass
class FrameResult:
    """Detections of one frame, in the pixels of the original frame.

    Attributes:
        index: 0-based position of the frame in the source.
        boxes: ``float32 [k, 4]`` x1, y1, x2, y2.
        labels: ``int64 [k]`` class indices ``1..C``.
        scores: ``float32 [k]``, descending.
        class_names: ``k`` class names (``names[label - 1]``).
        image: the frame itself, RGB ``uint8 [H, W, 3]`` (for drawing); ``None`` if not kept.
    """

    index: int
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    class_names: list[str]
    image: Optional[np.ndarray] = field(default=None, repr=False)

    def to_json(self, video: str) -> dict:
        """The JSON-lines record of ``dsfnet.evaluation.detections``."""
        return {
            "video": video,
            "frame_index": int(self.index),
            "detections": [
                {"box": [float(v) for v in box], "label": int(label), "class": name, "score": float(score)}
                for box, label, name, score in zip(self.boxes.tolist(), self.labels.tolist(), self.class_names,
                                                   self.scores.tolist())
            ],
        }


class VideoPredictor:
    """Run a DSFNet over videos, one frame at a time.

    Args:
        model: a :class:`~dsfnet.models.detector.DSFNet` (or a DDP wrapper of one). It is not changed: it runs in
            eval mode while a video is predicted and gets its own mode back afterwards, on its own device.
        config: its :class:`Config`; ``config.test`` gives n, sampling, stride, mode, seed and precision,
            ``config.data`` the resize, ``class_names(config)`` the names.
        device: where the model is (checked; ``None``: wherever its parameters are).
        score_thresh: keep detections scoring at least this (the model's own ``roi.score_thresh`` applies first).
        classes: keep only these class names (``None`` = all); an unknown name raises ``ValueError``.
        num_frames, sampling, stride, mode, seed, precision, memory: override ``config.test`` (checked like it).
        keep_images: attach each frame's RGB array to its :class:`FrameResult` (for drawing).

    One predictor runs one video at a time (``stats`` describes the last one); use one predictor per thread to
    run videos concurrently.
    """

    def __init__(self, model: torch.nn.Module, config: Config, device: Optional[Union[str, torch.device]] = None,
                 score_thresh: float = 0.0, classes: Optional[Iterable[str]] = None,
                 num_frames: Optional[int] = None, sampling: Optional[str] = None, stride: Optional[int] = None,
                 mode: Optional[str] = None, seed: Optional[int] = None, precision: Optional[str] = None,
                 keep_images: bool = True, memory: Optional[str] = None):
        self.model = getattr(model, "module", model)  # a DistributedDataParallel wrapper: use the model inside
        self.device = next(self.model.parameters()).device
        asked = torch.device(device) if device is not None else self.device
        if (asked.type, asked.index if asked.index is not None else self.device.index) != \
                (self.device.type, self.device.index):
            raise ValueError(f"the model is on {self.device}, not on {device}: move it with model.to(device)")
        overrides = {"num_frames": num_frames, "sampling": sampling, "stride": stride, "mode": mode, "seed": seed,
                     "precision": precision, "memory": memory}
        self.test = check_test(dataclasses.replace(
            config.test, **{name: value for name, value in overrides.items() if value is not None}))
        self.data = config.data
        self.score_thresh = float(score_thresh)
        self.class_names = list(config_class_names(config))
        self.allowed_labels = self._labels(classes)
        self.keep_images = keep_images
        #: counters of the last ``predict`` run: frames, backbone_frames (frames through conv1..conv4),
        #: max_stored (most conv4 maps held at once), support_memories (support memories built)
        self.stats: dict[str, int] = {}

    @classmethod
    def from_checkpoint(cls, path: Union[str, "os.PathLike[str]"], device: Union[str, torch.device] = "cpu",
                        **options) -> "VideoPredictor":
        """A predictor for the checkpoint at ``path`` (``final.pth``, an export, :func:`dsfnet.bundled_checkpoint`).

        The model is built from the checkpoint's own config and moved to ``device``; ``options`` are the
        constructor's keyword arguments (``score_thresh``, ``classes``, ``num_frames``, ``sampling``, ...).
        """
        model, config = load_model(path, device)
        return cls(model, config, device=device, **options)

    def _labels(self, classes: Optional[Iterable[str]]) -> Optional[set[int]]:
        if classes is None:
            return None
        classes = list(classes)
        unknown = [name for name in classes if name not in self.class_names]
        if unknown:
            raise ValueError(f"unknown class name(s) {', '.join(map(repr, unknown))}; valid classes: "
                             f"{', '.join(self.class_names)}")
        return {self.class_names.index(name) + 1 for name in classes}

    def plan(self, num_frames: int) -> SupportPlan:
        """The support plan of a video of ``num_frames`` frames (none for a model without fusion)."""
        n = self.test.num_frames if self.model.uses_support else 1
        if n > num_frames:  # more frames per clip than the video has would repeat frames within a clip
            logger.info("the video has %d frames: using n = %d instead of %d", num_frames, num_frames, n)
            n = num_frames
        return plan_support(num_frames, n, self.test.sampling, self.test.stride, self.test.seed)

    def predict(self, source: Union[str, FrameSource, Sequence[str]]) -> Iterator[FrameResult]:
        """Yield a :class:`FrameResult` per frame of ``source``, in order.

        ``source``: a video file, a folder of frames, a list of image paths, a live stream (``video_io.LiveSource``,
        causal sampling only) or a :class:`FrameSource`. Raises ``FileNotFoundError`` / ``ValueError`` (naming the
        input) for missing or unreadable input.
        """
        source = open_source(source)
        if self.test.sampling == "causal":
            yield from self.stream(source.frames())
            return
        if source.live:
            raise ValueError(f"{source.path} is a live stream of unknown length, but sampling "
                             f"{self.test.sampling!r} needs the whole video first: use --sampling causal "
                             "(test.sampling: causal)")
        num_frames = source.count()
        if num_frames == 0:
            raise ValueError(f"{source.path}: no frames")
        if self.test.sampling == "shuffled_window" and self.model.uses_support:
            yield from self._predict_window(source, num_frames)
            return
        run = _VideoRun(self, source, self.plan(num_frames))
        self.stats = run.stats
        with self._running():
            yield from run.results()

    def stream(self, frames: Iterable) -> Iterator[FrameResult]:
        """Causal inference over any iterable of frames (RGB ``uint8 [H, W, 3]`` arrays or PIL images, e.g. a
        camera's): yields each frame's :class:`FrameResult` as soon as that frame is processed, before the next
        frame is read. Each frame is fused with frames that came before it only, held in a memory of at most
        n−1 frames (``test.memory``: ``recent`` or ``spread``, see ``dsfnet.inference.causal``).

        Raises ``ValueError`` when the predictor was built with an offline sampling (``stream`` cannot read ahead).
        """
        if self.test.sampling != "causal":
            raise ValueError(f"stream() runs causal inference, but this predictor's sampling is "
                             f"{self.test.sampling!r}: build it with sampling='causal'")
        capacity = self.test.num_frames - 1 if self.model.uses_support else 0
        images: dict[int, np.ndarray] = {}

        def arrivals() -> Iterator[int]:  # the plan pulls one frame per step, after the previous step is done
            for index, image in enumerate(frames):
                images[index] = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else image
                yield index

        run = _StreamRun(self, images.pop, keep_images=self.keep_images)
        self.stats = run.stats
        with self._running():
            yield from run.results(causal_steps(arrivals(), make_memory(self.test.memory, capacity, self.test.seed)))

    def _predict_window(self, source: FrameSource, num_frames: int) -> Iterator[FrameResult]:
        """``shuffled_window``: the steps run in the shuffled order (frames read by index), results come out in
        temporal order once all are done."""
        if not hasattr(source, "frame"):
            raise ValueError(f"{source.path}: sampling 'shuffled_window' reads frames in a shuffled order and needs "
                             "a folder of frames (or a list of image files), not a video stream")
        run = _StreamRun(self, source.frame, keep_images=False)
        self.stats = run.stats
        with self._running():
            steps = shuffled_window_steps(num_frames, self.test.num_frames, self.test.seed)
            results = {result.index: result for result in run.results(steps)}
        for index in range(num_frames):
            result = results.pop(index)
            if self.keep_images:
                result.image = source.frame(index)
            yield result

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """The model in eval mode, no autograd, and bf16 autocast when ``test.precision`` is bf16."""
        with _eval_mode(self.model), torch.inference_mode(), \
                torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.test.precision == "bf16"):
            yield

    def _result(self, index: int, detections: dict[str, Tensor], geometry: Geometry,
                image: Optional[np.ndarray]) -> FrameResult:
        boxes = geometry.to_original(detections["boxes"])
        labels = detections["labels"].cpu().numpy().astype(np.int64)
        scores = detections["scores"].float().cpu().numpy().astype(np.float32)
        keep = scores >= self.score_thresh
        if self.allowed_labels is not None:
            keep &= np.isin(labels, sorted(self.allowed_labels))
        order = np.argsort(-scores[keep], kind="stable")
        boxes, labels, scores = boxes[keep][order], labels[keep][order], scores[keep][order]
        names = [self.class_names[label - 1] for label in labels.tolist()]
        return FrameResult(index, boxes.reshape(-1, 4), labels, scores, names, image)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside, its own mode (training or not) again afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class _Run:
    """What every run of the predictor over one video has: the model, the resize geometry (fixed by the first
    frame) and the counters."""

    predictor: VideoPredictor
    model: torch.nn.Module
    geometry: Optional[Geometry]
    stats: dict[str, int]

    def _conv4(self, image: np.ndarray) -> Tensor:
        """One frame (RGB uint8 [H, W, 3]) -> raw conv4 ``[1, d, h, w]`` (the only place the backbone runs)."""
        if self.geometry is None:
            data = self.predictor.data
            self.geometry = Geometry.of(*image.shape[:2], data.min_size, data.max_size)
        self.stats["backbone_frames"] += 1
        return self.model.conv4(self.geometry.prepare(image, self.predictor.device))


class _VideoRun(_Run):
    """The per-video state of a prediction: decoded frames waiting to be yielded, the feature window, the support
    memories in use, the resize geometry and the counters."""

    def __init__(self, predictor: VideoPredictor, source: FrameSource, plan: SupportPlan):
        self.predictor, self.model, self.source, self.plan = predictor, predictor.model, source, plan
        self.window: FeatureWindow[Tensor] = FeatureWindow(plan)
        self.memories: dict[tuple[int, ...], object] = {}  # memory frames -> SupportMemory
        self.geometry: Optional[Geometry] = None
        self.pending: deque = deque()  # (index, image) decoded, not yet yielded
        self.decoded = 0
        self.stats = {"frames": plan.num_frames, "backbone_frames": 0, "max_stored": 0, "support_memories": 0}

    def results(self) -> Iterator[FrameResult]:
        self._prefetch_pinned()
        stream = enumerate(self.source.frames(stop=self.plan.num_frames))
        for t in range(self.plan.num_frames):
            use = self.plan.memory_of(t)
            # decode ahead only as far as a support frame that is not stored yet (stride)
            self._decode_until(max([t] + ([j for j in use[0] if j not in self.window] if use else [])), stream)
            self.stats["max_stored"] = self.window.peak
            detections = self._detect(t, use)
            index, image = self.pending.popleft()
            yield self.predictor._result(index, detections, self.geometry, image)
            self.window.release(t)
            if use is not None and use[1] is None:
                self.memories.pop(use[0], None)  # a memory of one test frame's own support set

    def _prefetch_pinned(self) -> None:
        """conv4 of the plan's pinned frames, from a first pass that stops at the last of them."""
        pinned = self.plan.pinned
        if not pinned:
            return
        for index, image in enumerate(self.source.frames(stop=max(pinned) + 1)):
            if index in pinned:
                self.window.add(index, self._conv4(image))
        missing = sorted(frame for frame in pinned if frame not in self.window)
        if missing:
            raise RuntimeError(f"{self.source.path}: support frames {missing} could not be decoded again")

    def _decode_until(self, last: int, stream: Iterator) -> None:
        while self.decoded <= last:
            try:
                index, image = next(stream)
            except StopIteration:
                raise RuntimeError(f"{self.source.path}: only {self.decoded} of {self.plan.num_frames} frames decoded "
                                   "on the second pass (the file changed or decodes nondeterministically)") from None
            if index not in self.window:
                self.window.add(index, self._conv4(image))
            self.pending.append((index, image if self.predictor.keep_images else None))
            self.decoded += 1

    def _detect(self, t: int, use) -> dict[str, Tensor]:
        """The test frame's detections: with its support memory (``cached``) or on its clip (``exact``), both
        from the plan's memory frames in the same order."""
        if use is None:
            return self.model.detect_cached(self.window[t], self.geometry.size)
        frames, exclude = use
        if self.predictor.test.mode == "exact":
            support = [self.window[j] for position, j in enumerate(frames) if position != exclude]
            return self.model.detect_exact(torch.cat(support + [self.window[t]]), self.geometry.size, len(support))
        if frames not in self.memories:
            self.memories[frames] = self.model.support_memory(torch.cat([self.window[j] for j in frames]),
                                                              self.geometry.size)
            self.stats["support_memories"] += 1
        return self.model.detect_cached(self.window[t], self.geometry.size, self.memories[frames], exclude)


class _StreamRun(_Run):
    """The state of a streamed plan (``causal``, ``shuffled_window``): the memory of support frames' contributions,
    the resize geometry and the counters.

    A frame's contribution as a support frame (``exact``: its raw conv4; ``cached``: a one-frame
    :class:`SupportMemory`) is computed once, when it enters the memory, and dropped when it leaves: in causal
    plans it is a by-product of the frame's own test (``detect_and_remember``); a frame that enters before its
    own test (``shuffled_window``) is run against the memory as it is then, and keeps its conv4 until its test.
    """

    def __init__(self, predictor: VideoPredictor, read, keep_images: bool):
        self.predictor, self.model, self.read, self.keep_images = predictor, predictor.model, read, keep_images
        self.exact = predictor.test.mode == "exact"
        self.memory: dict[int, object] = {}  # frame -> its contribution, while it is a support frame
        self.ahead: dict[int, Tensor] = {}  # conv4 of frames that entered the memory before their own test
        self.joined: tuple[tuple[int, ...], Optional[SupportMemory]] = ((), None)  # last support list, its memory
        self.spare: Optional[SupportMemory] = None  # an earlier joined memory whose storage the next join reuses
        self.geometry: Optional[Geometry] = None
        self.stats = {"frames": 0, "backbone_frames": 0, "max_stored": 0, "support_memories": 0}

    def results(self, steps: Iterable[Step]) -> Iterator[FrameResult]:
        for step in steps:
            for frame in step.support:
                if frame not in self.memory:
                    self._enter(frame)
            self.stats["max_stored"] = max(self.stats["max_stored"], len(self.memory))
            image = self.read(step.test) if step.test not in self.ahead else None
            conv4 = self.ahead.pop(step.test) if step.test in self.ahead else self._conv4(image)
            detections, contribution = self._test(conv4, step.support, step.keep)
            self.stats["frames"] += 1
            yield self.predictor._result(step.test, detections, self.geometry, image if self.keep_images else None)
            if step.keep:
                self.memory[step.test] = contribution
            for frame in step.release:
                del self.memory[frame]

    def _join(self, support: tuple[int, ...]) -> None:
        """The memory of ``support`` for this step, in last step's spare storage where possible.

        When the join covers every frame in memory (always in ``causal``), each frame's contribution becomes a
        view into the joined memory and the previous joined memory is the next step's spare: the memory then
        lives in two buffers for the whole stream instead of one new allocation per step and per frame. (A frame
        left out of the join, as a ``shuffled_window`` test frame is at its own step, would still read the old
        buffer, so then nothing is reused.)"""
        contributions = [self.memory[frame] for frame in support]
        if set(support) == set(self.memory):
            joined = SupportMemory.join(contributions, self.spare)
            self.memory.update((frame, joined.frame(position)) for position, frame in enumerate(support))
            self.spare = self.joined[1]  # no memory frame reads it any more
        else:
            joined, self.spare = SupportMemory.join(contributions), None
        self.joined = (support, joined)
        self.stats["support_memories"] += 1

    def _enter(self, frame: int) -> None:
        """A frame entering the memory before its own test: its contribution from a pass against the memory as it
        is (``cached``), or its conv4 (``exact``)."""
        conv4 = self.ahead[frame] = self._conv4(self.read(frame))
        self.memory[frame] = conv4 if self.exact else self._test(conv4, tuple(self.memory), keep=True)[1]

    def _test(self, conv4: Tensor, support: tuple[int, ...], keep: bool) -> tuple[dict[str, Tensor], object]:
        """A frame's detections against the ``support`` frames in memory, and (``keep``) its own contribution."""
        size = self.geometry.size
        if self.exact:
            clip = torch.cat([self.memory[frame] for frame in support] + [conv4])
            return self.model.detect_exact(clip, size, len(support)), conv4
        if self.joined[0] != support:  # a memory that did not change (spread, mostly) is not joined again
            self._join(support)
        if keep:
            return self.model.detect_and_remember(conv4, size, self.joined[1])
        return self.model.detect_cached(conv4, size, self.joined[1]), None
