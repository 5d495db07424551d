"""In-memory annotation records shared by the readers, the samplers and the evaluator.

Boxes follow the ImageNet VID convention: ``[x1, y1, x2, y2]`` in pixels of the original image, inclusive
corners (a box touching the right border has ``x2 == width - 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """

    video: str
    frame_index: int
    image_path: str
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))


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
    """A split: its videos in split order and the class names (index ``i`` is label ``i + 1``)."""

    videos: list[VideoRecord]
    class_names: tuple[str, ...]

    def frames(self) -> list[FrameRecord]:
        """All frames in split order; position ``p`` is the devkit's 1-based global frame index ``p + 1``."""
        return [frame for video in self.videos for frame in video.frames]
