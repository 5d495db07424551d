"""Imported videos as a CocoVID JSON file and its frames, all or nothing.

``write_imported(videos, out)`` writes ``out`` (CocoVID, :mod:`dsfnet.data.cocovid`) and, for videos whose media
is a video file, ``<out stem>_frames/<video name>/NNNNNN.jpg``: the frames are built in a temporary folder and the
JSON written last, so a bad box or an undecodable video leaves neither behind (and an earlier output whole).

Boxes are cut to the frame. Checks, each a one-line ``InputError`` naming the file and element / line: a box in a
frame past the media's end or outside the covered frames, a box wholly outside the frame, a track that changes
label, two boxes of one track in one frame, a declared frame size that differs from the media's, two inputs giving
one video name.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dsfnet.atomic import replaced_directory
from dsfnet.data.cocovid import write_cocovid
from dsfnet.data.importers.annotations import ImportedBox, ImportedVideo
from dsfnet.data.importers.media import Frames, resolve_frames
from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord
from dsfnet.errors import InputError, OutputExists

logger = logging.getLogger(__name__)


def frames_folder(out: Path) -> Path:
    """Where ``write_imported`` puts the frames it extracts for ``out``."""
    return out.with_name(f"{out.stem}_frames")


def class_list(videos: Sequence[ImportedVideo], classes: Optional[Sequence[str]]) -> tuple[str, ...]:
    """``classes`` when given, else every label the files declare or use, in order of first appearance."""
    if classes:
        return tuple(classes)
    names: dict[str, None] = {}
    for video in videos:
        names.update(dict.fromkeys(video.labels))
        names.update(dict.fromkeys(box.label for box in video.boxes))
    return tuple(names)


def write_imported(videos: Sequence[ImportedVideo], out: Path, *, classes: Optional[Sequence[str]] = None,
                   overwrite: bool = False) -> DatasetRecord:
    """Write ``videos`` as CocoVID ``out`` (+ extracted frames); boxes of labels outside ``classes`` are left out
    (counted in one log line). Returns the dataset written."""
    if out.exists() and not overwrite:
        raise OutputExists(f"{out} exists: pass --overwrite to replace it")
    names = [video.name for video in videos]
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise InputError(f"two inputs give the video name {repeated!r}; convert them into separate files")
    names_tuple = class_list(videos, classes)
    needs_folder = any(v.frame_files is None and v.media is not None and v.media.is_file() for v in videos)
    folder = frames_folder(out)
    with (replaced_directory(folder, overwrite=overwrite) if needs_folder else contextlib.nullcontext(None)) as build:
        records = [_video_record(video, resolve_frames(video, build, folder), names_tuple) for video in videos]
        dataset = DatasetRecord(videos=records, class_names=names_tuple)
        write_cocovid(dataset, out)
    return dataset


def _video_record(video: ImportedVideo, frames: Frames, classes: tuple[str, ...]) -> VideoRecord:
    """The covered frames of ``video`` with their checked boxes."""
    if video.size is not None and video.size != (frames.width, frames.height):
        raise InputError(f"{video.source}: declares {video.size[0]}x{video.size[1]} frames but "
                         f"{video.media or video.frame_files[0]} has {frames.width}x{frames.height}")
    covered = video.frames if video.frames is not None else list(range(frames.count))
    past = next((f for f in covered if f >= frames.count), None)
    if past is not None:
        raise InputError(f"{video.source}: covers frame {past}, past the end of {video.media} ({frames.count} "
                         "frames)")
    by_frame, left_out = _boxes_by_frame(video, frames, set(covered), set(classes))
    if left_out:
        logger.info("%s: left out %d boxes of classes not in --classes", video.source, left_out)
    label_of = {name: label for label, name in enumerate(classes, 1)}
    records = []
    for index in covered:
        boxes = by_frame.get(index, [])
        records.append(FrameRecord(
            video=video.name, frame_index=index, image_path=str(frames.paths[index]), width=frames.width,
            height=frames.height, boxes=_inside(np.asarray([b.box for b in boxes], np.float64), frames),
            labels=np.asarray([label_of[b.label] for b in boxes], np.int64),
            track_ids=np.asarray([b.track for b in boxes], np.int64),
            occluded=np.asarray([b.occluded for b in boxes], bool)))
    return VideoRecord(name=video.name, frames=records)


def _inside(boxes: np.ndarray, frames: Frames) -> np.ndarray:
    """``boxes [k, 4]`` cut to the frame ``[0, W] x [0, H]``, as float32: a box reaching past the border keeps
    its part inside (a COCO file may hold ``[x, y, 1e308, h]``, which float32 would make infinite)."""
    return np.clip(boxes.reshape(-1, 4), 0, [frames.width, frames.height] * 2).astype(np.float32)


def _boxes_by_frame(video: ImportedVideo, frames: Frames, covered: set, classes: set
                    ) -> tuple[dict[int, list[ImportedBox]], int]:
    """Checked boxes of the known classes by frame, and how many boxes of other classes were left out."""
    by_frame: dict[int, list[ImportedBox]] = defaultdict(list)
    first: dict[int, ImportedBox] = {}  # track -> its first box
    seen: set[tuple[int, int]] = set()
    left_out = 0
    for box in video.boxes:
        if box.frame >= frames.count:
            raise InputError(f"{box.where}: frame {box.frame} is past the end of {video.media} "
                             f"({frames.count} frames)")
        if box.frame not in covered:
            raise InputError(f"{box.where}: frame {box.frame} is outside the frames the file covers")
        x1, y1, x2, y2 = box.box
        if x1 >= frames.width or y1 >= frames.height or x2 <= 0 or y2 <= 0:
            raise InputError(f"{box.where}: box {[round(v, 2) for v in box.box]} lies outside the "
                             f"{frames.width}x{frames.height} frame")
        earlier = first.setdefault(box.track, box)
        if earlier.label != box.label:
            raise InputError(f"{box.where}: track {box.track} is labelled {box.label!r} here but "
                             f"{earlier.label!r} at {earlier.where}")
        if (box.frame, box.track) in seen:
            raise InputError(f"{box.where}: track {box.track} has a second box in frame {box.frame}")
        seen.add((box.frame, box.track))
        if box.label in classes:
            by_frame[box.frame].append(box)
        else:
            left_out += 1
    return by_frame, left_out
