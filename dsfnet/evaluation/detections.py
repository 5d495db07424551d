"""Detection containers and the two detection file formats the evaluator reads and writes.

JSON-lines (what ``dsfnet detect`` / ``dsfnet eval`` write): one JSON object per frame::

    {"video": str, "frame_index": int,
     "detections": [{"box": [x1, y1, x2, y2], "label": int, "class": str, "score": float}, ...]}

A detection's ``class`` name, when given, decides its class (``label`` is read only without one): the model's
label numbers need not be those of a ground-truth file.

Devkit text (the official ImageNet VID format): one detection per line::

    frame_index class_index score x1 y1 x2 y2

with ``frame_index`` the 1-based position of the frame in the split's frame list (``dataset.frames()``).
Boxes are inclusive pixel corners in the original image, never clipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dsfnet.data.json_fields import is_int, is_number, loads, numbers, shown
from dsfnet.data.records import DatasetRecord
from dsfnet.atomic import atomic_open
from dsfnet.errors import InputError, InputNotFound

logger = logging.getLogger(__name__)


@dataclass
class Detections:
    """Detections of a whole split as flat arrays.

    Attributes:
        frame_ids: ``int64 [N]`` 0-based position of the frame in ``dataset.frames()``.
        labels: ``int64 [N]`` class indices ``1..C``.
        scores: ``float64 [N]``.
        boxes: ``float64 [N, 4]`` x1, y1, x2, y2 (inclusive pixel corners, original image).
    """

    frame_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))

    def __post_init__(self) -> None:
        self.frame_ids = np.asarray(self.frame_ids, np.int64).reshape(-1)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, np.float64).reshape(-1)
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        n = len(self.frame_ids)
        if not (len(self.labels) == len(self.scores) == len(self.boxes) == n):
            raise InputError(f"Detections: inconsistent lengths frame_ids={n}, labels={len(self.labels)}, "
                             f"scores={len(self.scores)}, boxes={len(self.boxes)}")

    def __len__(self) -> int:
        return len(self.frame_ids)

    def select(self, index: np.ndarray) -> "Detections":
        """Subset by boolean mask or integer index."""
        return Detections(self.frame_ids[index], self.labels[index], self.scores[index], self.boxes[index])

    @staticmethod
    def concatenate(parts: Sequence["Detections"]) -> "Detections":
        parts = list(parts)
        if not parts:
            return Detections()
        return Detections(np.concatenate([p.frame_ids for p in parts]), np.concatenate([p.labels for p in parts]),
                          np.concatenate([p.scores for p in parts]), np.concatenate([p.boxes for p in parts]))

    @staticmethod
    def for_frame(frame_id: int, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> "Detections":
        """Detections of one frame (``boxes [k, 4]``, ``labels [k]``, ``scores [k]``) at split position ``frame_id``."""
        labels = np.asarray(labels, np.int64).reshape(-1)
        return Detections(np.full(len(labels), int(frame_id), np.int64), labels, scores, boxes)


# --------------------------------------------------------------------------------------------------- reading


def _frame_lookup(dataset: DatasetRecord) -> dict[tuple[str, int], int]:
    lookup: dict[tuple[str, int], int] = {}
    position = 0
    for video in dataset.videos:
        for frame in video.frames:
            lookup[(frame.video, int(frame.frame_index))] = position
            # Readers may name the video by the VideoRecord name when it differs from FrameRecord.video.
            lookup.setdefault((video.name, int(frame.frame_index)), position)
            position += 1
    return lookup


def read_detections(path: str | os.PathLike, dataset: DatasetRecord, strict: bool = True) -> Detections:
    """Read a detection file, auto-detecting JSON-lines (first non-blank character ``{``) or devkit text.

    An empty (or whitespace-only) file is read as no detections, with a warning naming it. Without ``strict``,
    JSON-lines records of frames that the ground truth does not cover (of a video it has: ground truth of part of
    a video) are left out, counted in one warning; with it they are errors.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a malformed line, an unknown class / label / frame, a frame listed twice, a binary file; the
            message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"detection file not found: {path}")
    head = next((line.lstrip() for _, line in _text_lines(path) if line.strip()), None)
    if head is None:
        logger.warning("%s: the detection file is empty: every class gets AP 0", path)
        return Detections()
    if head.startswith("{"):
        return read_jsonl(path, dataset, strict)
    return read_devkit_txt(path, dataset)


def _text_lines(path: Path):
    """``(line number, line)`` of a UTF-8 text file; a binary file is a ``ValueError`` naming file and line."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path}:{line_no}: not a text detection file (bytes that are not UTF-8)") from None


def read_jsonl(path: str | os.PathLike, dataset: DatasetRecord, strict: bool = True) -> Detections:
    """Read the JSON-lines format (one object per frame); see the module docstring and :func:`read_detections`
    for ``strict``. A video named with a file suffix (``vtest.avi``) matches ground truth named without it."""
    path = Path(path)
    lookup = _frame_lookup(dataset)
    partial = None if strict else {name for name, _ in lookup}
    uncovered = 0
    name_to_label = {name: i + 1 for i, name in enumerate(dataset.class_names)}
    rows: list[tuple[int, int, float, list[float]]] = []  # (frame position, label, score, box)
    first_line: dict[int, int] = {}  # frame position -> line that listed it
    for line_no, line in _text_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        position, frame_rows = _jsonl_record(line, where, lookup, name_to_label, len(dataset.class_names), partial)
        if position is None:
            uncovered += 1
            continue
        if position in first_line:  # a repeated record would count its detections twice
            raise InputError(f"{where}: frame {_frame_name(dataset, position)} is listed again (first on line "
                             f"{first_line[position]}); give each frame one record")
        first_line[position] = line_no
        rows.extend(frame_rows)
    if uncovered:
        logger.warning("%s: left out %d detection frames that the ground truth does not cover", path, uncovered)
    if not rows:
        return Detections()
    frame_ids, labels, scores, boxes = zip(*rows)
    return Detections(np.asarray(frame_ids), np.asarray(labels), np.asarray(scores), np.asarray(boxes))


def _frame_name(dataset: DatasetRecord, position: int) -> str:
    """``(video='...', frame_index=N)`` of the frame at ``position`` of ``dataset.frames()``."""
    for video in dataset.videos:
        if position < len(video.frames):
            return f"(video={video.name!r}, frame_index={video.frames[position].frame_index})"
        position -= len(video.frames)
    return f"at position {position}"


def _jsonl_record(line: str, where: str, lookup: dict, name_to_label: dict, num_classes: int,
                  partial: Optional[set] = None) -> tuple[Optional[int], list[tuple]]:
    """One JSON-lines record: its frame position and its detections as ``(frame position, label, score, box)``;
    ``ValueError`` naming ``where`` (file:line) for anything malformed. ``(None, [])`` for a frame the ground
    truth lacks of a video in ``partial`` (the names of the videos that may be covered in part)."""
    obj = loads(line, where)
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object per line")
    video, frame_index, dets = obj.get("video"), obj.get("frame_index"), obj.get("detections")
    if not isinstance(video, str) or not is_int(frame_index) or not isinstance(dets, list):
        raise InputError(f'{where}: expected {{"video": str, "frame_index": int, "detections": [...]}}')
    stem = os.path.splitext(video)[0]  # `dsfnet detect vtest.avi` names the video with its suffix
    position = lookup.get((video, frame_index), lookup.get((stem, frame_index)))
    if position is None and partial is not None and (video in partial or stem in partial):
        return None, []
    if position is None:
        raise InputError(f"{where}: frame (video={shown(video)}, frame_index={shown(frame_index)}) is not in the "
                         "dataset")
    return position, [(position, *_jsonl_detection(det, f"{where}: detection {k}", name_to_label, num_classes))
                      for k, det in enumerate(dets)]


def _jsonl_detection(det, where: str, name_to_label: dict, num_classes: int) -> tuple[int, float, list[float]]:
    """``(label, score, box)`` of one detection object; the label from ``class`` and/or ``label``."""
    if not isinstance(det, dict):
        raise InputError(f"{where}: expected an object")
    box = numbers(det.get("box"), 4, where, "'box'", "[x1, y1, x2, y2]")
    score = det.get("score")
    if not is_number(score):
        raise InputError(f"{where}: 'score' must be a finite number, got {shown(score)}")
    label, name = det.get("label"), det.get("class")
    if label is None and name is None:
        raise InputError(f"{where}: needs 'class' (name) or 'label' (1..{num_classes})")
    if name is not None:  # the name wins: a model's label numbers need not be the ground truth file's
        if not isinstance(name, str) or name not in name_to_label:
            raise InputError(f"{where}: class {shown(name)} is not a class of the dataset")
        label = name_to_label[name]
    if not is_int(label) or not 1 <= label <= num_classes:
        raise InputError(f"{where}: label {shown(label)} out of range 1..{num_classes}")
    return label, float(score), box


def read_devkit_txt(path: str | os.PathLike, dataset: DatasetRecord) -> Detections:
    """Read the devkit text format ``frame_index class_index score x1 y1 x2 y2`` (1-based frame index)."""
    path = Path(path)
    num_frames = sum(len(video.frames) for video in dataset.videos)
    num_classes = len(dataset.class_names)
    tokens: list[str] = []
    line_numbers: list[int] = []
    for line_no, line in _text_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 7:
            raise InputError(f"{path}:{line_no}: expected 7 fields 'frame_index class_index score x1 y1 x2 y2',"
                             f" got {len(fields)}: {line.strip()[:100]!r}")
        tokens.extend(fields)
        line_numbers.append(line_no)
    if not line_numbers:
        return Detections()
    try:
        values = np.asarray(tokens, dtype=np.float64).reshape(-1, 7)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        # Slow path, only to name the offending line.
        for row, line_no in enumerate(line_numbers):
            for token in tokens[7 * row: 7 * row + 7]:
                try:
                    ok = math.isfinite(float(token))
                except ValueError:
                    ok = False
                if not ok:
                    raise InputError(f"{path}:{line_no}: {token!r} is not a finite number")
        raise AssertionError("unreachable")  # pragma: no cover
    frames, classes = values[:, 0], values[:, 1]
    for column, what in ((frames, "frame_index"), (classes, "class_index")):
        bad = np.nonzero(column != np.round(column))[0]
        if len(bad):
            raise InputError(f"{path}:{line_numbers[bad[0]]}: {what} must be an integer, got {column[bad[0]]!r}")
    bad = np.nonzero((frames < 1) | (frames > num_frames))[0]
    if len(bad):
        raise InputError(f"{path}:{line_numbers[bad[0]]}: frame_index {int(frames[bad[0]])} out of range "
                         f"1..{num_frames} (1-based over the split's frame list)")
    bad = np.nonzero((classes < 1) | (classes > num_classes))[0]
    if len(bad):
        raise InputError(f"{path}:{line_numbers[bad[0]]}: class_index {int(classes[bad[0]])} is not a class of "
                         f"the dataset (1..{num_classes})")
    return Detections(frames.astype(np.int64) - 1, classes.astype(np.int64), values[:, 2], values[:, 3:7])


# --------------------------------------------------------------------------------------------------- writing


def _frame_order(detections: Detections) -> np.ndarray:
    """Order by frame, then score descending (stable)."""
    return np.lexsort((-detections.scores, detections.frame_ids))


def frame_record(video: str, frame_index: int, *, boxes: Sequence, labels: Sequence, class_names: Sequence[str],
                 scores: Sequence) -> dict:
    """One line of the JSON-lines format: a frame and its detections (``boxes [k, 4]`` x1, y1, x2, y2 in original
    pixels, ``labels [k]`` in ``1..C`` with their ``class_names``, ``scores [k]``), as plain JSON types. The one
    writer of the record: ``write_jsonl`` and ``dsfnet detect`` (``FrameResult.to_json``) both use it."""
    return {
        "video": video,
        "frame_index": int(frame_index),
        "detections": [{"box": [float(v) for v in box], "label": int(label), "class": name, "score": float(score)}
                       for box, label, name, score in zip(boxes, labels, class_names, scores)],
    }


def write_jsonl(path: str | os.PathLike, dataset: DatasetRecord, detections: Detections) -> None:
    """Write the JSON-lines format, one object per frame of ``dataset.frames()`` (frames without detections get
    an empty list), atomically."""
    frames = dataset.frames()
    if len(detections) and (detections.frame_ids.min() < 0 or detections.frame_ids.max() >= len(frames)):
        raise InputError(f"detections refer to frame positions outside 0..{len(frames) - 1}")
    if len(detections) and (detections.labels.min() < 1 or detections.labels.max() > len(dataset.class_names)):
        raise InputError(f"detections have labels outside 1..{len(dataset.class_names)}")
    order = _frame_order(detections)
    fids = detections.frame_ids[order]
    starts = np.searchsorted(fids, np.arange(len(frames) + 1))
    labels = detections.labels[order].tolist()
    scores = detections.scores[order].tolist()
    boxes = detections.boxes[order].tolist()
    names = dataset.class_names
    with atomic_open(path, "w") as handle:
        for position, frame in enumerate(frames):
            rows = slice(starts[position], starts[position + 1])
            record = frame_record(frame.video, frame.frame_index, boxes=boxes[rows], labels=labels[rows],
                                  class_names=[names[label - 1] for label in labels[rows]], scores=scores[rows])
            handle.write(json.dumps(record) + "\n")


def write_devkit_txt(path: str | os.PathLike, detections: Detections) -> None:
    """Write the devkit text format (1-based frame index), atomically; full float precision."""
    order = _frame_order(detections)
    with atomic_open(path, "w") as handle:
        for f, c, s, box in zip((detections.frame_ids[order] + 1).tolist(), detections.labels[order].tolist(),
                                detections.scores[order].tolist(), detections.boxes[order].tolist()):
            handle.write(f"{f} {c} {s!r} {box[0]!r} {box[1]!r} {box[2]!r} {box[3]!r}\n")
