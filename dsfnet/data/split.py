"""Record types that extend the shared ones (``records.py``) with what a split file or an XML adds.

- :class:`VIDFrameRecord` is a :class:`FrameRecord` that also carries the per-object ``occluded`` and
  ``degraded`` flags of VID XML (``degraded`` is written by the synthetic generator, absent from real data), so
  that evaluation can report degraded and clean objects separately.
- :class:`SplitRecord` is a :class:`DatasetRecord` that also lists the split's *key frames*: the frames a
  training epoch samples clips around (``VID_train_15frames``: the 15 listed frames of each snippet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsfnet.data.records import DatasetRecord, FrameRecord


@dataclass
class VIDFrameRecord(FrameRecord):
    """A frame with per-object flags; ``occluded`` and ``degraded`` are ``bool [k]`` aligned with ``boxes``."""

    occluded: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    degraded: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))


@dataclass
class SplitRecord(DatasetRecord):
    """A dataset plus its key frames as ``(video position, frame position)`` pairs.

    A key may occur several times (the real ``DET_train_30classes.txt`` lists some images twice; such an image
    is then sampled twice per epoch, as in the reference implementations).
    """

    key_frames: list[tuple[int, int]] = field(default_factory=list)


def key_frames(dataset: DatasetRecord) -> list[tuple[int, int]]:
    """The dataset's key frames: those its split lists, or every frame when it lists none."""
    keys = getattr(dataset, "key_frames", None)
    if keys:
        return list(keys)
    return [(v, f) for v, video in enumerate(dataset.videos) for f in range(len(video.frames))]
