"""CVAT for video 1.1 XML (``annotations.xml`` of CVAT's "CVAT for video 1.1" export), read with the standard
library's ElementTree (the format is small and flat; datumaro would add a large dependency for ~100 lines).

Layout::

    <annotations><version>1.1</version>
      <meta><task>  (or <job>)
        <size>N</size> <start_frame>S</start_frame> <stop_frame>E</stop_frame> <frame_filter>step=K</frame_filter>
        <labels><label><name>person</name></label>...</labels>
        <original_size><width>W</width><height>H</height></original_size> <source>video.mp4</source>
      </task></meta>
      <track id="0" label="person">
        <box frame="0" outside="0" occluded="0" keyframe="1" xtl="" ytl="" xbr="" ybr=""/> ...
      </track>
    </annotations>

Frame numbers are the task's (0..N-1); task frame ``f`` is media frame ``S + f * K``. A track's box holds from
its frame until the track's next box: boxes between two listed boxes are interpolated linearly (CVAT exports
them all, marked ``keyframe="0"``; a file listing only key frames reads the same), an ``outside="1"`` box ends
the object's presence until the next box, and the last box holds to the task's end unless it is ``outside``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

from dsfnet.data.importers.annotations import ImportedBox, ImportedVideo, checked_box, frame_count, number
from dsfnet.data.xml_file import parse_xml
from dsfnet.errors import InputError

#: CVAT shapes other than boxes, which a detector cannot train on
_OTHER_SHAPES = ("polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton")


def read_cvat(path: Path) -> list[ImportedVideo]:
    """The one video of a CVAT for video 1.1 file (``media`` is the ``<source>`` named, relative to the file)."""
    root = parse_xml(path)
    if root.tag != "annotations":
        raise InputError(f"{path}: not a CVAT export (root element <{root.tag}>, expected <annotations>)")
    if root.find("image") is not None:
        raise InputError(f"{path}: <image> elements: this is 'CVAT for images'; export the task as "
                         "'CVAT for video 1.1'")
    meta = root.find("meta/task")
    meta = meta if meta is not None else root.find("meta/job")
    start, step, size = _frame_range(meta, path)
    tracks, last = root.findall("track"), size - 1 if size is not None else None
    if last is None:
        last = max((number(b.get("frame"), f"{path}: <box>", "frame", int) for t in tracks for b in t.iter("box")),
                   default=-1)
    frame_count(last + 1, str(path))
    boxes: list[ImportedBox] = []
    for track in tracks:
        boxes.extend(_track_boxes(track, path, last))
    source = _text(meta, "source")
    return [ImportedVideo(
        name=Path(source).name if source else path.stem, source=path,
        media=path.parent / source if source else None,
        frames=[start + frame * step for frame in range(last + 1)],
        labels=[name.text.strip() for name in root.iterfind("meta/*/labels/label/name")
                if name.text and name.text.strip()],
        boxes=[_to_media(box, start, step) for box in boxes], size=_size(meta, path))]


def _text(meta: Optional[ET.Element], tag: str) -> Optional[str]:
    node = meta.find(tag) if meta is not None else None
    return node.text.strip() if node is not None and node.text and node.text.strip() else None


def _frame_range(meta: Optional[ET.Element], path: Path) -> tuple[int, int, Optional[int]]:
    """``(start_frame, step, size)`` of the task (``size`` ``None`` when not declared)."""
    start = number(_text(meta, "start_frame") or "0", f"{path}: <start_frame>", "start_frame", int, minimum=0)
    step_text = (_text(meta, "frame_filter") or "step=1").replace(" ", "")
    step = number(step_text.removeprefix("step="), f"{path}: <frame_filter>", "the step", int, minimum=1)
    size = _text(meta, "size")
    if size is None and _text(meta, "stop_frame") is not None:
        stop = number(_text(meta, "stop_frame"), f"{path}: <stop_frame>", "stop_frame", int, minimum=start)
        return start, step, (stop - start) // step + 1
    return start, step, None if size is None else number(size, f"{path}: <size>", "size", int, minimum=0)


def _size(meta: Optional[ET.Element], path: Path) -> Optional[tuple[int, int]]:
    width, height = _text(meta, "original_size/width"), _text(meta, "original_size/height")
    if width is None or height is None:
        return None
    where = f"{path}: <original_size>"
    return number(width, where, "width", int, minimum=1), number(height, where, "height", int, minimum=1)


def _to_media(box: ImportedBox, start: int, step: int) -> ImportedBox:
    return ImportedBox(start + box.frame * step, box.track, box.label, box.box, box.occluded, box.where)


def _track_boxes(track: ET.Element, path: Path, last: int) -> list[ImportedBox]:
    """Every frame's box of one ``<track>``: listed, interpolated between listed ones, and held to ``last``."""
    here = f"{path}: <track id={track.get('id')}>"
    track_id = number(track.get("id"), here, "the track id", int)
    label = track.get("label")
    if not label:
        raise InputError(f"{here} has no label")
    shapes = [child.tag for child in track if child.tag in _OTHER_SHAPES]
    if shapes:
        raise InputError(f"{here}: <{shapes[0]}> shapes are not boxes; dsfnet trains on <box> tracks only")
    keys = sorted((_key_box(element, here, last) for element in track.iter("box")), key=lambda key: key[0])
    boxes = []
    for (frame, outside, occluded, box, where), following in zip(keys, keys[1:] + [None]):
        if outside:
            continue
        end = following[0] if following is not None else last + 1
        if following is not None and following[0] == frame:
            raise InputError(f"{where}: the track has two boxes in frame {frame}")
        for f in range(frame, end):
            t = (f - frame) / (end - frame)
            # CVAT interpolates linearly towards the next box unless that one ends the object (outside)
            coords = box if following is None or following[1] else tuple(
                a + (b - a) * t for a, b in zip(box, following[3]))
            boxes.append(ImportedBox(f, track_id, label, coords, occluded, where))
    return boxes


def _key_box(element: ET.Element, here: str, last: int) -> tuple:
    """``(frame, outside, occluded, box, where)`` of one listed ``<box>``."""
    where = f"{here} <box frame={element.get('frame')}>"
    frame = number(element.get("frame"), where, "frame", int)
    if not 0 <= frame <= last:
        raise InputError(f"{where}: frame outside the task's frames 0..{last}")
    box = checked_box(tuple(number(element.get(key), where, key) for key in ("xtl", "ytl", "xbr", "ybr")), where)
    flags = [element.get(key, "0") for key in ("outside", "occluded")]
    if any(flag not in ("0", "1") for flag in flags):
        raise InputError(f"{where}: outside / occluded must be 0 or 1, got {flags}")
    return frame, flags[0] == "1", flags[1] == "1", box, where
