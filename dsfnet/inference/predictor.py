"""``VideoPredictor``: streamed video inference with DSFNet, ``cached`` or ``exact`` (DESIGN §4).

A stateful object beside the pure ``nn.Module`` (like SAM's predictor)::

    predictor = VideoPredictor(model, config, device="cpu", score_thresh=0.3)
    for result in predictor.predict("clip.mp4"):      # a video file, a folder of frames, a list of image paths
        print(result.index, result.boxes, result.class_names, result.scores)

How a video is processed (memory does not grow with its length; no frame's backbone runs twice):

1. Open the source and count its frames (one decode pass for video files, see ``video_io``).
2. Plan the support frames with ``dsfnet.data.sampling.support_frames``:

   - ``shuffled``: one global set G = the first n−1 frames of the video's shuffled order. A test frame outside G
     uses G; a test frame t inside G uses G \\ {t} plus the n-th frame of the order (the *substitute*), exactly
     as ``support_frames`` says, so the test frame never counts as its own support. Only the ≤ n frames of
     G ∪ {substitute} need features before streaming.
   - ``stride``: each test frame has its own neighbours (within ``reach = (n−1)·stride`` of it). Frames are
     decoded ahead of the test frame as far as its support needs, and a sliding window keeps the conv4 of every
     frame that a later test frame still needs (at most ~2·reach + 1 maps).

3. Decode the prefetched support frames once (a pass that stops at the last one needed) and keep their raw
   conv4 (≤ n maps).
4. Stream all frames in order: conv4 once per frame (the stored map when it is a support frame), then

   - ``cached``: ``detect_cached`` with a :class:`SupportCache`. In ``shuffled`` sampling, the cache of G is built
     once; each of the ≤ n−1 test frames inside G gets a cache of its own support set, built when that frame is
     reached and dropped after it (one extra support-cache build per such frame, a cost bounded by n² frames'
     heads per video, independent of its length). In ``stride`` sampling every frame has its own support set,
     so the cache is rebuilt for every frame and ``cached`` saves nothing over ``exact``.
   - ``exact``: the full network after the backbone (``detect_exact``) on the clip [support conv4…, test conv4].
     The backbone is per-frame, so computing conv4 once and reusing it is still exactly "the full network on
     the n-frame clip".

For the ``frame`` variant ``cached`` and ``exact`` agree to float precision (the test frame's fusion reads the
support frames' raw conv4 either way). For ``instance``/``dsfnet`` they differ: in ``cached`` the support
instances are fused among the support frames only, not re-enhanced with each test frame.

Frames are resized with one scale per video (``dsfnet.data.transforms.resize_scale``: shorter side
``data.min_size``, longer side ≤ ``data.max_size``) and boxes are mapped back to the original resolution.
"""

from __future__ import annotations

import contextlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from dsfnet.config import TEST_MEMORIES, TEST_SAMPLINGS, Config, class_names as config_class_names
from dsfnet.inference.causal import Step, causal_steps, make_memory, shuffled_window_steps
from dsfnet.inference.video_io import FrameSource, open_source
from dsfnet.models.detector import SupportCache


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


# --------------------------------------------------------------------------------------------------- planning
class SupportPlan:
    """Which frames each test frame is fused with.

    Attributes:
        num_frames: frames of the video.
        prefetch: frames whose conv4 is computed before streaming and kept to the end (shuffled sampling).
        shared: the support list most test frames use (shuffled), or ``None`` (stride).
        reach: every support frame of test frame t lies within ``[t - reach, t + reach]`` (stride), or is a
            prefetched frame (shuffled, reach 0).
    """

    def __init__(self, num_frames: int, n: int, sampling: str, stride: int = 1, seed: int = 0):
        self.num_frames = num_frames
        self.n = n
        self.sampling = sampling
        self.stride = stride
        self.seed = seed
        self.prefetch: list[int] = []
        self.shared: Optional[list[int]] = None
        self.special: dict[int, list[int]] = {}
        self.reach = 0
        if n <= 1:
            self.shared = []
            return
        from dsfnet.data import sampling as sampling_module

        self._support_frames = sampling_module.support_frames
        if sampling == "shuffled":
            order = [int(i) for i in sampling_module.shuffled_support_order(num_frames, seed)]
            global_set = order[: n - 1]  # all frames when the video is shorter than n
            members = set(global_set)
            # the ≤ n-1 frames of the global set each get their own support (the substitute replaces them)
            self.special = {t: self._call(t) for t in global_set}
            outside = next((t for t in range(num_frames) if t not in members), None)
            if outside is not None:
                self.shared = self._call(outside)
                if set(self.shared) != members:
                    raise RuntimeError(
                        f"support_frames({num_frames}, {outside}, n={n}, 'shuffled', seed={seed}) returned "
                        f"{sorted(self.shared)}, not the global set {sorted(members)}: the predictor relies on "
                        "shuffled sampling sharing one set across test frames")
            else:
                self.shared = []
            needed = set(self.shared)
            for support in self.special.values():
                needed.update(support)
            self.prefetch = sorted(needed)
        elif sampling == "stride":
            # offsets -s, +s, -2s, ... : n-1 of them reach (n // 2)·s frames away at most
            self.reach = (n // 2) * stride
        else:
            raise ValueError(f"sampling must be 'shuffled' or 'stride', got {sampling!r}")

    def _call(self, t: int) -> list[int]:
        return [int(i) for i in self._support_frames(self.num_frames, t, self.n, self.sampling,
                                                     stride=self.stride, seed=self.seed)]

    def support(self, t: int) -> list[int]:
        """The support frames of test frame ``t`` (``support_frames``: never ``t`` itself in shuffled sampling of a
        video of ≥ 2 frames; stride sampling clamps at the video's ends and may repeat frames, ``t`` included)."""
        if self.shared is not None and t not in self.special:
            return self.shared
        if t in self.special:
            return self.special[t]
        support = self._call(t)
        if any(abs(j - t) > self.reach for j in support):
            raise RuntimeError(f"stride support of frame {t} reaches beyond ±{self.reach} frames: {support}")
        return support


# --------------------------------------------------------------------------------------------------- predictor
class VideoPredictor:
    """Run a DSFNet over videos, one frame at a time.

    Args:
        model: a :class:`~dsfnet.models.detector.DSFNet` (put in eval mode while predicting).
        config: its :class:`Config`; ``config.test`` gives the defaults of n, sampling, stride, mode and seed,
            ``config.data`` the resize, ``class_names(config)`` the names.
        device: where the model runs (the model is moved there).
        score_thresh: keep detections scoring at least this (the model's own ``roi.score_thresh`` applies first).
        classes: keep only these class names (``None`` = all); an unknown name raises ``ValueError``.
        num_frames, sampling, stride, mode, seed: override ``config.test``.
        keep_images: attach each frame's RGB array to its :class:`FrameResult` (for drawing).

    One predictor runs one video at a time (``predict`` keeps the video's resize geometry and ``stats`` on it);
    use one predictor per thread to run videos concurrently.
    """

    def __init__(self, model: torch.nn.Module, config: Config, device: Union[str, torch.device] = "cpu",
                 score_thresh: float = 0.0, classes: Optional[Iterable[str]] = None,
                 num_frames: Optional[int] = None, sampling: Optional[str] = None, stride: Optional[int] = None,
                 mode: Optional[str] = None, seed: Optional[int] = None, precision: Optional[str] = None,
                 keep_images: bool = True, memory: Optional[str] = None):
        self.device = torch.device(device)
        model = getattr(model, "module", model)  # a DistributedDataParallel wrapper: use the model inside
        self.model = model.to(self.device).eval()
        self.config = config
        test = config.test
        self.n = int(num_frames if num_frames is not None else test.num_frames)
        self.sampling = sampling if sampling is not None else test.sampling
        self.stride = int(stride if stride is not None else test.stride)
        self.mode = mode if mode is not None else test.mode
        self.seed = int(seed if seed is not None else test.seed)
        self.precision = precision if precision is not None else test.precision
        self.memory = memory if memory is not None else test.memory
        if self.n < 1:
            raise ValueError(f"the number of frames per clip (n) must be >= 1, got {self.n}")
        if self.sampling not in TEST_SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(TEST_SAMPLINGS)}, got {self.sampling!r}")
        if self.memory not in TEST_MEMORIES:
            raise ValueError(f"memory must be one of {', '.join(TEST_MEMORIES)}, got {self.memory!r}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.mode not in ("cached", "exact"):
            raise ValueError(f"mode must be 'cached' or 'exact', got {self.mode!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        self.score_thresh = float(score_thresh)
        self.class_names = list(config_class_names(config))
        self.keep_images = keep_images
        self.allowed_labels: Optional[set[int]] = None
        if classes is not None:
            classes = list(classes)
            unknown = [name for name in classes if name not in self.class_names]
            if unknown:
                raise ValueError(f"unknown class name(s) {', '.join(map(repr, unknown))}; valid classes: "
                                 f"{', '.join(self.class_names)}")
            self.allowed_labels = {self.class_names.index(name) + 1 for name in classes}
        # a model without fusion looks at the test frame only: no support frames to read
        #: counters of the last ``predict`` run: frames, backbone_frames (frames through conv1..conv4),
        #: max_stored (most conv4 maps held at once), support_caches (SupportCache builds)
        self.stats: dict[str, int] = {}
        self.uses_support = getattr(model, "frame_fusion", None) is not None or \
            getattr(model, "instance_fusions", None) is not None

    # ------------------------------------------------------------------ public
    def plan(self, num_frames: int) -> SupportPlan:
        """The support plan of a video of ``num_frames`` frames."""
        n = self.n if self.uses_support else 1
        return SupportPlan(num_frames, n, self.sampling, self.stride, self.seed)

    def predict(self, source: Union[str, FrameSource, Sequence[str]]) -> Iterator[FrameResult]:
        """Yield a :class:`FrameResult` per frame of ``source``, in order.

        ``source``: a video file, a folder of frames, a list of image paths, a live stream (``video_io.LiveSource``,
        causal sampling only) or a :class:`FrameSource`. Raises ``FileNotFoundError`` / ``ValueError`` (naming the
        input) for missing or unreadable input.
        """
        source = open_source(source)
        if self.sampling == "causal":
            yield from self.stream(source.frames())
            return
        if source.live:
            raise ValueError(f"{source.path} is a live stream of unknown length, but sampling {self.sampling!r} "
                             "needs the whole video first: use --sampling causal (test.sampling: causal)")
        num_frames = source.count()
        if num_frames == 0:
            raise ValueError(f"{source.path}: no frames")
        with self._inference_context():
            if self.sampling == "shuffled_window" and self.uses_support:
                yield from self._predict_window(source, num_frames)
            else:
                yield from self._predict(source, num_frames)

    def stream(self, frames: Iterable[Union[np.ndarray, "PIL.Image.Image"]]) -> Iterator[FrameResult]:
        """Causal inference over any iterable of frames (RGB ``uint8 [H, W, 3]`` arrays or PIL images, e.g. a
        camera's): yields each frame's :class:`FrameResult` as soon as that frame is processed, before the next
        frame is read. Each frame is fused with frames that came before it only, held in a memory of at most
        n−1 frames (``memory``: ``recent`` or ``spread``, see ``dsfnet.inference.causal``).

        Raises ``ValueError`` when the predictor was built with an offline sampling (``stream`` cannot read ahead).
        """
        if self.sampling != "causal":
            raise ValueError(f"stream() runs causal inference, but this predictor's sampling is {self.sampling!r}: "
                             "build it with sampling='causal'")
        capacity = self.n - 1 if self.uses_support else 0
        self.stats = {"frames": 0, "backbone_frames": 0, "max_stored": 0, "support_caches": 0}
        self._geometry = None
        images: dict[int, np.ndarray] = {}

        def arrivals() -> Iterator[int]:  # the plan pulls one frame per step, after the previous step is done
            for index, image in enumerate(frames):
                images[index] = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else image
                yield index

        steps = causal_steps(arrivals(), make_memory(self.memory, capacity, self.seed))
        with self._inference_context():
            yield from self._run_steps(steps, lambda index: images.pop(index), keep_order=True)

    # ------------------------------------------------------------------ internals
    @contextlib.contextmanager
    def _inference_context(self) -> Iterator[None]:
        """No autograd, and bf16 autocast when ``precision`` is bf16."""
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            yield

    def _predict_window(self, source: FrameSource, num_frames: int) -> Iterator[FrameResult]:
        """``shuffled_window``: the steps run in the shuffled order (frames read by index), results come out in
        temporal order once all are done."""
        if not hasattr(source, "frame"):
            raise ValueError(f"{source.path}: sampling 'shuffled_window' reads frames in a shuffled order and needs "
                             "a folder of frames (or a list of image files), not a video stream")
        self.stats = {"frames": 0, "backbone_frames": 0, "max_stored": 0, "support_caches": 0}
        self._geometry = None
        results = {result.index: result for result in
                   self._run_steps(shuffled_window_steps(num_frames, self.n, self.seed), source.frame, False)}
        for index in range(num_frames):
            result = results.pop(index)
            if self.keep_images:
                result.image = source.frame(index)
            yield result

    def _run_steps(self, steps: Iterable[Step], read, keep_order: bool) -> Iterator[FrameResult]:
        """Run a streamed plan: each step's test frame against the contributions of its support frames in memory.

        ``read(index)`` gives a frame's image. The backbone runs once per frame; a frame's contribution as a
        support frame (``exact``: its raw conv4; ``cached``: a one-frame :class:`SupportCache`) is computed once,
        when it enters the memory, and dropped when it leaves: in causal plans it is a by-product of the frame's
        own test (``detect_cached(..., own=...)``); a frame that enters before its own test (``shuffled_window``)
        is run against the memory as it is then, and keeps its conv4 until its test. ``keep_order``: each result
        carries the image just read (causal); otherwise results carry no image.
        """
        memory: dict[int, object] = {}  # frame -> its contribution, while it is a support frame
        ahead: dict[int, Tensor] = {}  # conv4 of frames that entered the memory before their own test
        joined: dict = {}  # the SupportCache of the last support list, reused while the list is the same
        for step in steps:
            for frame in step.support:
                if frame not in memory:
                    ahead[frame] = self._conv4(read(frame))
                    memory[frame] = self._contribution(ahead[frame], list(memory), memory, joined)
            self.stats["max_stored"] = max(self.stats["max_stored"], len(memory))
            image = read(step.test) if step.test not in ahead else None
            conv4 = ahead.pop(step.test) if step.test in ahead else self._conv4(image)
            own = SupportCache() if step.keep and self.mode == "cached" else None
            detections = self._detect(conv4, list(step.support), memory, joined, own)
            self.stats["frames"] += 1
            yield self._result(step.test, detections, image if keep_order and self.keep_images else None)
            if step.keep:
                memory[step.test] = conv4 if self.mode == "exact" else own
            for frame in step.release:
                del memory[frame]

    def _contribution(self, conv4: Tensor, context: list[int], memory: dict, joined: dict):
        """What a frame entering the memory contributes: its raw conv4 (``exact``), or (``cached``) the one-frame
        cache of a pass against the ``context`` frames in memory."""
        if self.mode == "exact":
            return conv4
        own = SupportCache()
        self._detect(conv4, context, memory, joined, own)
        return own

    def _detect(self, conv4: Tensor, support: list[int], memory: dict, joined: dict,
                own: Optional[SupportCache] = None) -> dict[str, Tensor]:
        """One test frame's detections against the ``support`` frames' contributions in ``memory``."""
        size = self._geometry["size"]
        if self.mode == "exact":
            return self.model.detect_exact(torch.cat([memory[frame] for frame in support] + [conv4]), size,
                                           len(support))
        if joined.get("frames") != support:
            self.stats["support_caches"] += 1
            joined.update(frames=support, cache=SupportCache.join([memory[frame] for frame in support]))
        return self.model.detect_cached(conv4, joined["cache"], size, own)

    def _predict(self, source: FrameSource, num_frames: int) -> Iterator[FrameResult]:
        plan = self.plan(num_frames)
        self.stats = {"frames": num_frames, "backbone_frames": 0, "max_stored": 0, "support_caches": 0}
        pinned = set(plan.prefetch)
        store: dict[int, Tensor] = {}  # frame -> raw conv4 [1, d, h, w]
        self._geometry = None
        if pinned:
            last = max(pinned)
            for index, image in enumerate(source.frames(stop=last + 1)):
                if index in pinned:
                    store[index] = self._conv4(image)
            missing = pinned - set(store)
            if missing:
                raise RuntimeError(f"{source.path}: support frames {sorted(missing)} could not be decoded again")
        union_cache = {}  # the one cache of all prefetched frames (shuffled sampling), built on first use

        # need[j]: planned test frames (support or itself) that still need frame j's conv4 (stride window)
        need: Counter = Counter()
        supports: dict[int, list[int]] = {}
        planned = 0
        frames = enumerate(source.frames(stop=num_frames))
        pending: deque = deque()  # (index, image) decoded, not yet yielded
        decoded = 0
        for t in range(num_frames):
            horizon = min(num_frames, t + 2 * plan.reach + 1)
            while planned < horizon:
                supports[planned] = plan.support(planned)
                for j in supports[planned] + [planned]:
                    if j not in pinned:
                        need[j] += 1
                planned += 1
            support = supports.pop(t)
            # decode ahead only as far as a support frame that is not stored yet (stride); prefetched ones are kept
            last_needed = max([t] + [j for j in support if j not in pinned])
            while decoded <= last_needed:
                try:
                    index, image = next(frames)
                except StopIteration:
                    raise RuntimeError(f"{source.path}: only {decoded} of {num_frames} frames decoded on the second "
                                       "pass (the file changed or decodes nondeterministically)") from None
                if index not in store:
                    store[index] = self._conv4(image)
                pending.append((index, image if self.keep_images else None))
                decoded += 1

            self.stats["max_stored"] = max(self.stats["max_stored"], len(store))
            conv4 = store[t]
            if self.mode == "exact":
                clip = torch.cat([store[j] for j in support] + [conv4])
                detections = self.model.detect_exact(clip, self._geometry["size"], len(support))
            else:
                cache = self._cache_for(support, plan.prefetch, store, union_cache)
                detections = self.model.detect_cached(conv4, cache, self._geometry["size"])

            index, image = pending.popleft()
            assert index == t
            yield self._result(t, detections, image)

            for j in support + [t]:
                if j not in pinned:
                    need[j] -= 1
                    if need[j] <= 0:
                        del need[j]
                        # every test frame that could use j (within reach) has been planned
                        if planned >= min(num_frames, j + plan.reach + 1):
                            store.pop(j, None)

    def _cache_for(self, support: list[int], union: list[int], store: dict[int, Tensor], union_cache: dict):
        """The SupportCache of ``support``.

        In shuffled sampling every test frame's support is the prefetched set (the global set plus its
        substitute) minus one frame, so one cache of the whole set is built per video and the missing frame is
        left out of it (:meth:`SupportCache.without`); otherwise (stride sampling, videos shorter than n, where
        support frames repeat) the support's own cache is built.
        """
        members = set(support)
        if union and len(support) == len(members) == len(union) - 1 and members <= set(union):
            if "cache" not in union_cache:
                union_cache["cache"] = self._support_cache(store, union)
            missing = next(frame for frame in union if frame not in members)
            return union_cache["cache"].without(union.index(missing))
        return self._support_cache(store, support)

    def _support_cache(self, store: dict[int, Tensor], support: list[int]):
        self.stats["support_caches"] += 1
        if not support:
            return SupportCache()
        return self.model.build_support_cache(torch.cat([store[j] for j in support]), self._geometry["size"])

    def _conv4(self, image: np.ndarray) -> Tensor:
        """One frame (RGB uint8 [H, W, 3]) -> raw conv4 ``[1, d, h, w]`` (the only place the backbone runs)."""
        self.stats["backbone_frames"] += 1
        return self.model.conv4(self._prepare(image))

    def _prepare(self, image: np.ndarray) -> Tensor:
        """RGB uint8 [H, W, 3] -> float ``[1, 3, h, w]`` in [0, 1], resized with the video's one scale exactly as
        the training transform does (PIL bilinear on the uint8 frame, ``dsfnet.data.transforms.ClipTransform``)."""
        from PIL import Image

        height, width = image.shape[:2]
        if self._geometry is None:
            from dsfnet.data.images import resize_scale, resized_size

            scale = resize_scale(height, width, self.config.data.min_size, self.config.data.max_size)
            size = resized_size(height, width, scale)
            self._geometry = {"original": (height, width), "size": size, "scale": float(scale)}
        elif (height, width) != self._geometry["original"]:
            raise ValueError(f"frame size {width}x{height} differs from the video's first frame "
                             f"{self._geometry['original'][1]}x{self._geometry['original'][0]}")
        size = self._geometry["size"]
        if size != (height, width):
            image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).to(self.device)
        return tensor.permute(2, 0, 1)[None].float().div_(255.0)

    def _result(self, index: int, detections: dict[str, Tensor], image: Optional[np.ndarray]) -> FrameResult:
        # training maps boxes with x * scale (ClipTransform), so the inverse is one division
        boxes = (detections["boxes"].float().cpu() / self._geometry["scale"]).numpy().astype(np.float32)
        labels = detections["labels"].cpu().numpy().astype(np.int64)
        scores = detections["scores"].float().cpu().numpy().astype(np.float32)
        keep = scores >= self.score_thresh
        if self.allowed_labels is not None:
            keep &= np.isin(labels, sorted(self.allowed_labels))
        order = np.argsort(-scores[keep], kind="stable")
        boxes, labels, scores = boxes[keep][order], labels[keep][order], scores[keep][order]
        names = [self.class_names[label - 1] for label in labels.tolist()]
        return FrameResult(index, boxes.reshape(-1, 4), labels, scores, names, image)


