"""What every importer returns: the boxes of one video as an annotation tool exported them, before the frames
are resolved (:mod:`dsfnet.data.importers.media`) and written as CocoVID (:mod:`dsfnet.data.importers.writer`).

Boxes are ``(x1, y1, x2, y2)`` in pixels of the original frame, in the tool's own continuous coordinates (CVAT's
``xtl, ytl, xbr, ybr``; COCO's ``x, y, x + w, y + h``), so the CocoVID ``bbox`` written is the tool's box
unchanged (cut to the frame where it reaches past the border). Frame indices are 0-based positions in the media
(the video file, or the folder's frames in natural file-name order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dsfnet.data.json_fields import INT64_MAX, INT64_MIN, shown
from dsfnet.errors import InputError

#: the most frames an imported video may cover (9 days at 25 frames/s)
MAX_FRAMES = 20_000_000


@dataclass(frozen=True)
class ImportedBox:
    """One object in one frame.

    Attributes:
        frame: 0-based frame index in the media.
        track: object identity, unique within the video.
        label: class name as the tool spells it.
        box: ``(x1, y1, x2, y2)`` pixels.
        occluded: the tool's occlusion flag (MOT: visibility below 0.5).
        where: the element or line it came from, for error messages (``"file.xml: <track id=3> <box frame=7>"``).
    """

    frame: int
    track: int
    label: str
    box: tuple[float, float, float, float]
    occluded: bool
    where: str


@dataclass
class ImportedVideo:
    """One annotated video.

    Attributes:
        name: the video's name in the CocoVID JSON (the media's file or folder name, as ``dsfnet detect`` names
            its output, so that its detections score against this ground truth directly).
        source: the annotation file.
        media: the video file or folder of frames; ``None`` when ``frame_files`` lists the frames.
        frame_files: one image per frame (COCO per-image JSON), or ``None``.
        frames: the frame indices the annotations cover (every frame of the task / sequence, with or without
            boxes); ``None``: every frame of the media.
        labels: the class names the file declares, in its order (also those without boxes).
        boxes: every box of every covered frame.
        size: ``(width, height)`` the file declares, or ``None``.
    """

    name: str
    source: Path
    media: Optional[Path]
    frame_files: Optional[list[Path]] = None
    frames: Optional[list[int]] = None
    labels: list[str] = field(default_factory=list)
    boxes: list[ImportedBox] = field(default_factory=list)
    size: Optional[tuple[int, int]] = None


def checked_box(values: tuple[float, float, float, float], where: str) -> tuple[float, float, float, float]:
    """``values`` as a box, or a one-line ``ValueError`` naming ``where``: non-finite coordinates or a negative
    width / height."""
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{where}: box coordinates must be finite numbers, got {list(values)}")
    x1, y1, x2, y2 = values
    if x2 < x1 or y2 < y1:
        raise InputError(f"{where}: negative box size (width {x2 - x1:g}, height {y2 - y1:g})")
    return values


def number(text: Optional[str], where: str, what: str, kind: type = float,
           minimum: Optional[float] = None) -> float | int:
    """``text`` parsed as ``kind`` (``float``, or ``int`` in numpy's int64 range, where ids and frames end up),
    ``>= minimum`` when given, or a one-line :class:`InputError` naming ``where``."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} must be {'an integer' if kind is int else 'a number'}, "
                         f"got {shown(text)}") from None
    if kind is int and not INT64_MIN <= value <= INT64_MAX:
        raise InputError(f"{where}: {what} must be a 64-bit integer, got {shown(text)}")
    if minimum is not None and not value >= minimum:
        raise InputError(f"{where}: {what} must be >= {minimum}, got {shown(text)}")
    return value


def frame_count(count: int, where: str) -> int:
    """``count`` frames that a file declares or uses, refused past :data:`MAX_FRAMES` (a mistyped size would
    otherwise have the importer list billions of frames)."""
    if count > MAX_FRAMES:
        raise InputError(f"{where}: {count} frames, more than the {MAX_FRAMES:,} frames a video may have here")
    return count
