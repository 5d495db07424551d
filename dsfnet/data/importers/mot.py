"""MOTChallenge ground truth (``SEQ/gt/gt.txt``), read line by line (a CSV of numbers needs no library).

One box per line: ``frame, id, bb_left, bb_top, bb_width, bb_height[, conf[, class, visibility]]`` (MOT16/17/20;
MOT15's 10-column files carry world coordinates instead of class and visibility). Rules, as the MOT devkit
applies them:

- ``frame`` and the pixel coordinates are 1-based: frame 1 is the sequence's first image
  (``SEQ/img1/000001.jpg``), the top-left pixel is (1, 1); the box becomes
  ``(bb_left - 1, bb_top - 1, bb_left - 1 + bb_width, bb_top - 1 + bb_height)`` in 0-based pixels.
- A row with ``conf`` 0 is ignored (MOT marks boxes to ignore so).
- ``class`` (9 columns) names the class by MOT17's table (1 pedestrian, 2 person_on_vehicle, 3 car, ...);
  without it every box is a ``pedestrian``.
- ``visibility`` below 0.5 sets the ``occluded`` flag; rows below ``min_visibility`` are left out.

The frames are ``SEQ/img1`` (``imDir`` of ``SEQ/seqinfo.ini`` when present) and the sequence covers
``seqLength`` frames (or those of the image folder).
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Optional

from dsfnet.data.importers.annotations import ImportedBox, ImportedVideo, checked_box, frame_count, number
from dsfnet.errors import InputError

#: MOT17 / MOT20 ground-truth classes (column 8)
MOT_CLASSES = {1: "pedestrian", 2: "person_on_vehicle", 3: "car", 4: "bicycle", 5: "motorbike",
               6: "non_motorized_vehicle", 7: "static_person", 8: "distractor", 9: "occluder",
               10: "occluder_on_the_ground", 11: "occluder_full", 12: "reflection", 13: "crowd"}


def read_mot(path: Path, min_visibility: float = 0.0) -> list[ImportedVideo]:
    """The sequence of one ``gt.txt`` (its folder's parent is the sequence folder)."""
    sequence = path.parent.parent if path.parent.name == "gt" else path.parent
    info = _seqinfo(sequence)
    media = sequence / (info.get("imdir") or "img1")  # `imDir=` (empty) too: not the sequence folder itself
    boxes, labels = [], []
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            where = f"{path}:{line_no}"
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InputError(f"{where}: not a text file (bytes that are not UTF-8)") from None
            if line:
                box = _row(line, where, min_visibility)
                if box is not None:
                    boxes.append(box)
                    labels += [box.label] if box.label not in labels else []
    length = info.get("seqlength")
    where = str(sequence / "seqinfo.ini")
    frames = None if length is None else list(range(frame_count(number(length, where, "seqLength", int, minimum=0),
                                                                where)))
    return [ImportedVideo(name=media.name, source=path, media=media, frames=frames, labels=labels, boxes=boxes,
                          size=_declared_size(info, sequence))]


def _seqinfo(sequence: Path) -> dict:
    """``[Sequence]`` of ``seqinfo.ini`` (keys lower-cased), or ``{}`` without one."""
    ini = sequence / "seqinfo.ini"
    if not ini.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read_string(ini.read_text(encoding="utf-8"), source=str(ini))
    except (configparser.Error, UnicodeDecodeError) as error:
        raise InputError(f"{ini}: not a valid seqinfo.ini ({' '.join(str(error).split())})") from None
    return dict(parser["Sequence"]) if parser.has_section("Sequence") else {}


def _declared_size(info: dict, sequence: Path) -> Optional[tuple[int, int]]:
    if "imwidth" not in info or "imheight" not in info:
        return None
    where = str(sequence / "seqinfo.ini")
    return (number(info["imwidth"], where, "imWidth", int, minimum=1),
            number(info["imheight"], where, "imHeight", int, minimum=1))


def _row(line: str, where: str, min_visibility: float) -> Optional[ImportedBox]:
    """One line as a box, or ``None`` for a row MOT ignores (``conf`` 0, or visibility below the minimum)."""
    fields = re.split(r"\s*,\s*|\s+", line)  # comma-separated (MOT), or blank-separated
    if len(fields) < 6:
        raise InputError(f"{where}: expected 'frame, id, left, top, width, height[, conf, class, visibility]', "
                         f"got {len(fields)} values")
    frame = number(fields[0], where, "the frame (column 1)", int)
    track = number(fields[1], where, "the id (column 2)", int)
    if frame < 1:
        raise InputError(f"{where}: frame numbers start at 1, got {frame}")
    left, top, width, height = (number(value, where, "a box value (columns 3-6)") for value in fields[2:6])
    box = checked_box((left - 1, top - 1, left - 1 + width, top - 1 + height), where)
    if len(fields) > 6 and number(fields[6], where, "conf (column 7)") == 0:
        return None
    label, visibility = "pedestrian", 1.0
    if len(fields) == 9:
        code = number(fields[7], where, "the class (column 8)", int)
        if code not in MOT_CLASSES:
            raise InputError(f"{where}: unknown MOT class {code} (known: 1..{len(MOT_CLASSES)})")
        label, visibility = MOT_CLASSES[code], number(fields[8], where, "visibility (column 9)")
    if visibility < min_visibility:
        return None
    return ImportedBox(frame - 1, track, label, box, visibility < 0.5, where)
