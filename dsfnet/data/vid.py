"""Reader of the ImageNet VID / DET layout (DESIGN §5), with an on-disk index per split.

``read_vid_split(root, "VID_train_15frames")`` reads ``root/ImageSets/VID_train_15frames.txt`` and the XML of
every frame it needs, and returns a :class:`~dsfnet.data.split.DatasetRecord`:

- VID splits: one video per snippet with *all* its frames in order (``frame_index`` = the frame's file number);
  the split's lines become ``key_frames`` (``VID_train_15frames``: the 15 listed frames; ``VID_val_videos`` and
  ``VID_val_frames``: every frame).
- DET splits: one single-frame video per image (``is_still_image=True``); a duplicated line is one image and two
  key frames. Objects of the other 170 DET classes are dropped (DET images are annotated with 200 classes);
  in VID annotations any wnid outside the 30 classes is an error.

XML fields are read by tag, boxes are clipped to ``[0, W-1] x [0, H-1]``, frames without objects are kept,
objects get ``trackid`` (DET: their position) and the optional ``occluded`` / ``degraded`` flags.

Index cache: parsing ~1.1 M XML files of the real train split takes minutes, so the parsed split is stored in
``cache_dir`` (default ``root/.dsfnet_cache``) as a pickle of flat arrays (written atomically), keyed by a
fingerprint of the split file's bytes and of the mtime of every annotation folder it names (one ``stat`` per
folder, no XML parsing). A folder's mtime changes when a file in it is added, removed or replaced, which is how
releases are extracted and how editors and tools save files. An XML rewritten *in place* keeps its folder's
mtime: ``check_files=True`` also stats every XML (name, mtime, size) and catches that too, at one ``stat`` per
file. A read-only root only costs a warning.

Errors name the file and the split line: missing split file / snippet / XML → ``FileNotFoundError``; malformed
split line or XML, unknown wnid → ``ValueError``. With ``skip_bad=True`` each is logged as a warning instead and
the whole snippet (or DET image, or split line) is left out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from dsfnet.atomic import atomic_write_bytes
from dsfnet.data.classes import VID_CLASS_NAMES, WNID_TO_LABEL
from dsfnet.data.json_fields import INT64_MAX, INT64_MIN, shown
from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord, clip_box
from dsfnet.data.xml_file import parse_xml
from dsfnet.errors import InputError, InputNotFound

logger = logging.getLogger(__name__)

#: Bump when the layout of the cached index changes, so that old caches are rebuilt.
CACHE_VERSION = 1
_WNID = re.compile(r"n\d{8}")


@dataclass
class SplitEntry:
    """One VID snippet or DET image named by a split file.

    Attributes:
        name: path below ``Annotations/VID`` (snippet folder) or ``Annotations/DET`` (image, no extension),
            e.g. ``"train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"``.
        line: 1-based line of the split file that first names it.
        still: a DET image.
        frames: file numbers of its frames, in order (``[0]`` for a DET image).
        keys: ``(split line, position in frames)`` of the key frames its lines name, repeats kept.
    """

    name: str
    line: int
    still: bool
    frames: list[int]
    keys: list[tuple[int, int]] = field(default_factory=list)

    @property
    def annotation_dir(self) -> str:
        """Folder (relative to the root) holding its XML files."""
        if self.still:
            return os.path.dirname(os.path.join("Annotations", "DET", self.name))
        return os.path.join("Annotations", "VID", self.name)

    def annotation_file(self, number: int) -> str:
        """XML file of frame ``number`` (relative to the root)."""
        if self.still:
            return os.path.join("Annotations", "DET", self.name + ".xml")
        return os.path.join("Annotations", "VID", self.name, f"{number:06d}.xml")


class _Problems:
    """Raises each bad-input error, or (``skip_bad``) records its message for a warning."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.messages: list[str] = []

    def report(self, error: Exception) -> None:
        if not self.skip_bad:
            raise error
        self.messages.append(f"skipped: {error}")


# ---------------------------------------------------------------------------------------------------- split files


def _line_error(path: Path, number: int, fields: list[str], reason: str) -> InputError:
    return InputError(f"{path} line {number}: {reason} (line: {shown(' '.join(fields), 100)})")


def _ints(path: Path, number: int, fields: list[str], positions: tuple[int, ...]) -> list[int]:
    try:
        return [int(fields[i]) for i in positions]
    except (ValueError, IndexError):
        raise _line_error(path, number, fields, "expected integer fields") from None


def _parse_key_lines(path: Path, lines, problems: _Problems) -> list[SplitEntry]:
    """``<snippet> 1 <frame, 0-based> <num frames>`` (VID_train_15frames): one entry per snippet."""
    entries: dict[str, SplitEntry] = {}
    for number, fields in lines:
        try:
            if len(fields) != 4:
                raise _line_error(path, number, fields, "expected '<snippet> 1 <frame> <num frames>'")
            frame, count = _ints(path, number, fields, (2, 3))
            if not 0 <= frame < count:
                raise _line_error(path, number, fields, f"frame {frame} outside 0..{count - 1}")
            entry = entries.get(fields[0])
            if entry is None:
                entry = entries[fields[0]] = SplitEntry(fields[0], number, False, list(range(count)))
            elif len(entry.frames) != count:
                raise _line_error(path, number, fields,
                                  f"{count} frames, but line {entry.line} says {len(entry.frames)}")
            entry.keys.append((number, frame))
        except ValueError as error:
            problems.report(error)
    return list(entries.values())


def _parse_video_list(path: Path, lines, problems: _Problems) -> list[SplitEntry]:
    """``<snippet> <1-based global start> 0 <num frames>`` (VID_val_videos): every frame is a key frame."""
    entries = []
    expected: Optional[int] = 1  # None after a bad line: the next good line sets it again
    for number, fields in lines:
        try:
            if len(fields) != 4:
                raise _line_error(path, number, fields, "expected '<snippet> <global start> 0 <num frames>'")
            start, count = _ints(path, number, fields, (1, 3))
            if expected is not None and start != expected:
                raise _line_error(path, number, fields, f"global start {start}, expected {expected}")
            expected = start + count
            frames = list(range(count))
            entries.append(SplitEntry(fields[0], number, False, frames, [(number, f) for f in frames]))
        except ValueError as error:
            expected = None
            problems.report(error)
    return entries


def _parse_frame_list(path: Path, lines, problems: _Problems) -> list[SplitEntry]:
    """``<snippet>/%06d <1-based global index>`` (VID_val_frames): the listed frames, grouped by snippet."""
    entries: list[SplitEntry] = []
    seen: set[str] = set()
    expected: Optional[int] = 1  # None after a bad line: the next good line sets it again
    for number, fields in lines:
        try:
            if len(fields) != 2 or "/" not in fields[0]:
                raise _line_error(path, number, fields, "expected '<snippet>/<frame> <global index>'")
            name, frame_text = fields[0].rsplit("/", 1)
            frame, index = _ints(path, number, [frame_text, fields[1]], (0, 1))
            if expected is not None and index != expected:
                raise _line_error(path, number, fields, f"global index {index}, expected {expected}")
            if entries and entries[-1].name == name:
                if frame <= entries[-1].frames[-1]:
                    raise _line_error(path, number, fields, "frames of a snippet must be listed in order")
            elif name in seen:
                raise _line_error(path, number, fields, f"snippet {name} listed in two separate runs of lines")
            else:
                seen.add(name)
                entries.append(SplitEntry(name, number, False, []))
            expected = index + 1
            entries[-1].keys.append((number, len(entries[-1].frames)))
            entries[-1].frames.append(frame)
        except ValueError as error:
            expected = None
            problems.report(error)
    return entries


def _parse_det_list(path: Path, lines, problems: _Problems) -> list[SplitEntry]:
    """``train/<...>/<stem> 1`` (DET_train_30classes): one entry per image, one key per line."""
    entries: dict[str, SplitEntry] = {}
    for number, fields in lines:
        try:
            if len(fields) != 2:
                raise _line_error(path, number, fields, "expected '<image> 1'")
            entry = entries.get(fields[0])
            if entry is None:
                entry = entries[fields[0]] = SplitEntry(fields[0], number, True, [0])
            entry.keys.append((number, 0))
        except ValueError as error:
            problems.report(error)
    return list(entries.values())


def parse_split_file(path: Path, text: str, problems: _Problems) -> list[SplitEntry]:
    """Entries of a split file, its format told by its name and its first line (DESIGN §5)."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if "\x00" in line:  # a NUL byte cannot be in a path: the file is corrupt
            problems.report(_line_error(path, number, line.split(), "a NUL byte"))
        elif line.strip():
            lines.append((number, line.split()))
    if not lines:
        return []
    parser: Callable
    if path.stem.startswith("DET"):
        parser = _parse_det_list
    elif len(lines[0][1]) == 2:
        parser = _parse_frame_list
    elif path.stem.endswith("_videos"):
        parser = _parse_video_list
    else:
        parser = _parse_key_lines
    return parser(path, lines, problems)


# ------------------------------------------------------------------------------------------------------ XML files


def _text(element: ET.Element, tag: str, path: str) -> str:
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise InputError(f"{path}: missing <{tag}> in <{element.tag}>")
    return child.text.strip()


def _number(element: ET.Element, tag: str, path: str) -> float:
    """The text of ``<tag>``, a finite number."""
    text = _text(element, tag, path)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{path}: <{tag}> is not a finite number: {shown(text)}")
    return value


def _integer(element: ET.Element, tag: str, path: str) -> int:
    """The text of ``<tag>``, an integer in numpy's int64 range (``64.0`` counts)."""
    value = _number(element, tag, path)
    if not value.is_integer() or not INT64_MIN <= value <= INT64_MAX:
        raise InputError(f"{path}: <{tag}> is not a 64-bit integer: {shown(_text(element, tag, path))}")
    return int(value)


def _flag(element: ET.Element, tag: str) -> bool:
    child = element.find(tag)
    return child is not None and (child.text or "").strip() not in ("", "0")


def parse_annotation(path: str, still: bool) -> tuple:
    """Parse one VID/DET XML file.

    Returns ``(width, height, boxes [k, 4] (clipped, inclusive corners), labels [k], track_ids [k],
    occluded [k], degraded [k])`` as Python lists.
    """
    root = parse_xml(path)
    size = root.find("size")
    if size is None:
        raise InputError(f"{path}: missing <size>")
    width, height = _integer(size, "width", path), _integer(size, "height", path)
    if width <= 0 or height <= 0:
        raise InputError(f"{path}: image size {width}x{height} is not positive")
    boxes, labels, track_ids, occluded, degraded = [], [], [], [], []
    for obj in root.findall("object"):
        wnid = _text(obj, "name", path)
        label = WNID_TO_LABEL.get(wnid)
        if label is None:
            if still and _WNID.fullmatch(wnid):
                continue  # one of the DET classes that VID does not have
            raise InputError(f"{path}: unknown class wnid {wnid!r} (not one of the 30 VID classes)")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise InputError(f"{path}: <object> without <bndbox>")
        x1, y1, x2, y2 = (_number(bndbox, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax"))
        if x2 < x1 or y2 < y1:
            raise InputError(f"{path}: box ({x1}, {y1}, {x2}, {y2}) has xmax < xmin or ymax < ymin")
        boxes.append(clip_box(x1, y1, x2, y2, width, height))
        labels.append(label)
        track_ids.append(len(track_ids) if still else _integer(obj, "trackid", path))
        occluded.append(_flag(obj, "occluded"))
        degraded.append(_flag(obj, "degraded"))
    return width, height, boxes, labels, track_ids, occluded, degraded


# -------------------------------------------------------------------------------------------------------- index


def _folder_state(directory: str, check_files: bool) -> Optional[tuple]:
    """What the fingerprint records of an annotation folder; ``None`` if it does not exist.

    The folder's mtime changes whenever a file in it is added, removed or replaced (tools and editors save by
    renaming a new file over the old one; extracting a new release creates the files). An XML rewritten in
    place leaves it unchanged: ``check_files`` then adds every XML's (name, mtime, size), one ``stat`` each.
    """
    try:
        if not check_files:
            return (os.stat(directory).st_mtime_ns,)
        with os.scandir(directory) as iterator:
            return tuple(sorted((item.name, stat.st_mtime_ns, stat.st_size) for item in iterator
                                if item.name.endswith(".xml") for stat in (item.stat(),)))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _fingerprint(split_bytes: bytes, folders: dict[str, Optional[tuple]], options: str) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"v{CACHE_VERSION} {options}\n".encode())
    digest.update(split_bytes)
    for directory in sorted(folders):
        digest.update(f"\n{directory}:{folders[directory]!r}".encode())
    return digest.hexdigest()


def _build_index(root: str, split_path: Path, entries: list[SplitEntry], folders: dict,
                 problems: _Problems) -> dict:
    """Parse every XML of ``entries`` into flat arrays (see :func:`_records_from_index`)."""
    names, stills, keys = [], [], []
    frame_offsets, numbers, widths, heights, object_offsets = [0], [], [], [], [0]
    boxes, labels, track_ids, occluded, degraded = [], [], [], [], []
    for entry in entries:
        try:
            if folders[entry.annotation_dir] is None:
                raise InputNotFound(f"{split_path} line {entry.line}: {'image' if entry.still else 'snippet'} "
                                        f"{entry.name} not found ({os.path.join(root, entry.annotation_dir)} "
                                        "does not exist)")
            parsed = []
            for number in entry.frames:
                try:
                    parsed.append(parse_annotation(os.path.join(root, entry.annotation_file(number)), entry.still))
                except (ValueError, FileNotFoundError) as error:
                    raise type(error)(f"{error} (listed in {split_path} line {entry.line})") from None
        except (ValueError, FileNotFoundError) as error:
            problems.report(error)
            continue
        video = len(names)
        names.append(entry.name)
        stills.append(entry.still)
        keys.extend((line, video, position) for line, position in entry.keys)
        for number, (width, height, b, lab, tid, occ, deg) in zip(entry.frames, parsed):
            numbers.append(number)
            widths.append(width)
            heights.append(height)
            boxes.extend(b)
            labels.extend(lab)
            track_ids.extend(tid)
            occluded.extend(occ)
            degraded.extend(deg)
            object_offsets.append(len(labels))
        frame_offsets.append(len(numbers))
    return {
        "names": names, "stills": np.asarray(stills, bool),
        "keys": np.asarray([key[1:] for key in sorted(keys)], np.int64).reshape(-1, 2),  # in split-line order
        "frame_offsets": np.asarray(frame_offsets, np.int64), "numbers": np.asarray(numbers, np.int64),
        "widths": np.asarray(widths, np.int64), "heights": np.asarray(heights, np.int64),
        "object_offsets": np.asarray(object_offsets, np.int64),
        "boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "labels": np.asarray(labels, np.int64),
        "track_ids": np.asarray(track_ids, np.int64), "occluded": np.asarray(occluded, bool),
        "degraded": np.asarray(degraded, bool),
    }


def _records_from_index(root: str, index: dict) -> DatasetRecord:
    """Turn the flat arrays of :func:`_build_index` into records (frame arrays are views of the flat ones)."""
    frame_offsets, object_offsets = index["frame_offsets"].tolist(), index["object_offsets"].tolist()
    numbers = index["numbers"].tolist()
    widths, heights = index["widths"].tolist(), index["heights"].tolist()
    boxes, labels, track_ids = index["boxes"], index["labels"], index["track_ids"]
    occluded, degraded = index["occluded"], index["degraded"]
    videos = []
    for v, (name, still) in enumerate(zip(index["names"], index["stills"].tolist())):
        frames = []
        # Data/VID/<snippet>/%06d.JPEG or Data/DET/<image>.JPEG, concatenated: os.path.join per frame was the
        # slowest part of reading a cached split.
        prefix = os.path.join(root, "Data", "DET" if still else "VID", name) + ("" if still else os.sep)
        for f in range(frame_offsets[v], frame_offsets[v + 1]):
            a, b = object_offsets[f], object_offsets[f + 1]
            path = prefix + ".JPEG" if still else f"{prefix}{numbers[f]:06d}.JPEG"
            frames.append(FrameRecord(
                video=name, frame_index=numbers[f], image_path=path,
                width=widths[f], height=heights[f], boxes=boxes[a:b], labels=labels[a:b],
                track_ids=track_ids[a:b], occluded=occluded[a:b], degraded=degraded[a:b]))
        videos.append(VideoRecord(name=name, frames=frames, is_still_image=still))
    keys = [tuple(key) for key in index["keys"].tolist()]
    return DatasetRecord(videos=videos, class_names=VID_CLASS_NAMES, key_frames=keys)


def _load_cache(path: Path, fingerprint: str) -> Optional[dict]:
    try:
        with open(path, "rb") as handle:
            stored = pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception as error:  # a truncated or foreign file is just a stale cache
        logger.info("ignoring unreadable index cache %s (%s)", path, error)
        return None
    if not isinstance(stored, dict) or stored.get("fingerprint") != fingerprint:
        return None
    return stored["index"]


def _save_cache(path: Path, fingerprint: str, index: dict) -> None:
    data = pickle.dumps({"fingerprint": fingerprint, "index": index}, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        atomic_write_bytes(path, data)
    except OSError as error:
        logger.warning("could not write the index cache %s (%s); the split will be parsed again next time",
                       path, error)


def index_split(root: str | os.PathLike, split: str, cache_dir: Optional[str | os.PathLike] = None,
                skip_bad: bool = False, check_files: bool = False) -> dict:
    """The parsed split as flat arrays, from the cache when it is up to date (see :func:`read_vid_split`)."""
    root = os.path.abspath(os.fspath(root))
    split_path = Path(root, "ImageSets", f"{split}.txt")
    if not split_path.is_file():
        raise InputNotFound(f"split file not found: {split_path} (expected ImageSets/{split}.txt below {root})")
    split_bytes = split_path.read_bytes()
    problems = _Problems(skip_bad)
    try:
        text = split_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{split_path}: not a text file ({error})") from None
    entries = parse_split_file(split_path, text, problems)
    split_messages = len(problems.messages)
    folders = {entry.annotation_dir: None for entry in entries}
    for directory in folders:
        folders[directory] = _folder_state(os.path.join(root, directory), check_files)
    fingerprint = _fingerprint(split_bytes, folders, f"skip_bad={skip_bad} check_files={check_files}")
    cache_path = Path(cache_dir if cache_dir is not None else os.path.join(root, ".dsfnet_cache"))
    cache_path = cache_path / f"{split}{'.skip_bad' if skip_bad else ''}.index.pkl"
    index = _load_cache(cache_path, fingerprint)
    if index is None:
        index = _build_index(root, split_path, entries, folders, problems)
        index["messages"] = problems.messages[split_messages:]
        _save_cache(cache_path, fingerprint, index)
    for message in problems.messages[:split_messages] + index["messages"]:
        logger.warning(message)
    return index


def read_vid_split(root: str | os.PathLike, split: str, cache_dir: Optional[str | os.PathLike] = None,
                   skip_bad: bool = False, check_files: bool = False) -> DatasetRecord:
    """Read split ``root/ImageSets/<split>.txt`` of an ImageNet VID/DET tree (see the module docstring).

    Args:
        root: the ``ILSVRC2015`` folder holding ``Data/``, ``Annotations/`` and ``ImageSets/``.
        split: split-file stem, e.g. ``"VID_train_15frames"``, ``"DET_train_30classes"``, ``"VID_val_videos"``.
        cache_dir: folder of the index cache (default ``root/.dsfnet_cache``).
        skip_bad: log and leave out bad snippets / images / lines instead of raising.
        check_files: also stat every XML file to validate the cache (catches files rewritten in place).
    """
    root = os.path.abspath(os.fspath(root))
    return _records_from_index(root, index_split(root, split, cache_dir, skip_bad, check_files))
