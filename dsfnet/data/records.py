"""In-memory annotation records shared by the readers, the samplers and the evaluator.

Boxes follow the ImageNet VID convention: ``[x1, y1, x2, y2]`` in pixels of the original image, inclusive
corners (a box touching the right border has ``x2 == width - 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class FrameRecord:
    """One annotated frame (a VID video frame or a DET still image).

    Attributes:
        video: name of the video it belongs to (e.g. ``"val/ILSVRC2015_val_00000000"``); for DET images the
            image's own name, making it a one-frame video.
        frame_index: 0-based position of the frame in its video.
        image_path: absolute path of the image file.
        width, height: image size in pixels.
        boxes: ``float32 [k, 4]`` x1, y1, x2, y2 (inclusive pixel corners).
        labels: ``int64 [k]`` class indices in ``1..num_classes``.
        track_ids: ``int64 [k]`` object identities, unique within the video.
        occluded, degraded: ``bool [k]`` per-object flags of VID XML / CocoVID (``degraded`` is written by the
            synthetic generator, absent from real data), or ``None`` when the reader had none; :meth:`flags`
            reads them as all-False then.
    """

    video: str
    frame_index: int
    image_path: str
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    occluded: Optional[np.ndarray] = None
    degraded: Optional[np.ndarray] = None

    def flags(self, name: str) -> np.ndarray:
        """The ``occluded`` or ``degraded`` flags, ``bool [k]`` aligned with ``boxes`` (all False when absent)."""
        values = getattr(self, name)
        return np.zeros(len(self.boxes), bool) if values is None else np.asarray(values, bool)


@dataclass
class VideoRecord:
    """All frames of one video (or one DET image), in temporal order."""

    name: str
    frames: list[FrameRecord]
    is_still_image: bool = False

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class DatasetRecord:
    """A split: its videos in split order and the class names (index ``i`` is label ``i + 1``).

    ``key_frames`` lists the split's *key frames* as ``(video position, frame position)`` pairs: the frames a
    training epoch samples clips around (``VID_train_15frames``: the 15 listed frames of each snippet). A key
    may occur several times (the real ``DET_train_30classes.txt`` lists some images twice; such an image is then
    sampled twice per epoch, as in the reference implementations). Empty: every frame is a key frame.
    """

    videos: list[VideoRecord]
    class_names: tuple[str, ...]
    key_frames: list[tuple[int, int]] = field(default_factory=list)

    def training_keys(self) -> list[tuple[int, int]]:
        """The key frames the split lists, or every frame when it lists none."""
        if self.key_frames:
            return list(self.key_frames)
        return [(v, f) for v, video in enumerate(self.videos) for f in range(len(video.frames))]

    def frames(self) -> list[FrameRecord]:
        """All frames in split order; position ``p`` is the devkit's 1-based global frame index ``p + 1``."""
        return [frame for video in self.videos for frame in video.frames]


def clip_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> list[float]:
    """An inclusive-corner box clipped to a ``width`` x ``height`` image: ``[0, W-1] x [0, H-1]``."""
    return [min(max(x1, 0.0), width - 1.0), min(max(y1, 0.0), height - 1.0),
            min(max(x2, 0.0), width - 1.0), min(max(y2, 0.0), height - 1.0)]
