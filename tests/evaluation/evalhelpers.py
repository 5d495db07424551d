"""Tiny builders of ground truth and detections for the evaluation tests."""

from __future__ import annotations

import numpy as np

from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord
from dsfnet.evaluation.detections import Detections

CLASSES = ("a", "b", "c")


def video(name: str, frames: list[list[tuple]], frame_indices=None) -> VideoRecord:
    """``frames[t]`` is a list of ``(label, track_id, [x1, y1, x2, y2])`` objects."""
    records = []
    for t, objects in enumerate(frames):
        index = t if frame_indices is None else frame_indices[t]
        boxes = np.array([o[2] for o in objects], np.float32).reshape(-1, 4)
        labels = np.array([o[0] for o in objects], np.int64)
        tracks = np.array([o[1] for o in objects], np.int64)
        records.append(FrameRecord(name, index, f"/nonexistent/{name}/{index:06d}.JPEG", 1000, 1000,
                                   boxes, labels, tracks))
    return VideoRecord(name, records)


def dataset(*videos: VideoRecord, classes=CLASSES) -> DatasetRecord:
    return DatasetRecord(list(videos), tuple(classes))


def dets(rows: list[tuple]) -> Detections:
    """``rows``: ``(frame_position, label, score, [x1, y1, x2, y2])``."""
    if not rows:
        return Detections()
    return Detections(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                      np.array([r[2] for r in rows], np.float64), np.array([r[3] for r in rows], np.float64))
