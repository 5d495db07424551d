"""Checks of a CocoVID split against the config: its categories matched to ``data.class_names`` by name, and
its frame files present, so that a mismatch fails in one line before the model is built.

Class-list rules (each message names the JSON file and the category):

- a category of the file that ``data.class_names`` lacks: an error (its boxes would otherwise train or score as
  another class, or be dropped unseen);
- a class of ``data.class_names`` that the file has no category for: an error for a training split (the model
  would learn that the class never occurs), a warning for a validation split (its AP is then undefined);
- a class with a category but no box: a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Sequence

import numpy as np

from dsfnet.data.records import DatasetRecord
from dsfnet.errors import InputError, InputNotFound

logger = logging.getLogger(__name__)


def match_classes(dataset: DatasetRecord, class_names: Sequence[str], *, source: str, training: bool,
                  default_list: bool = False) -> DatasetRecord:
    """``dataset`` with labels renumbered to ``class_names``' order (label ``i`` = ``class_names[i - 1]``);
    ``default_list``: ``class_names`` is the default (the VID classes) because ``data.class_names`` is not set."""
    names = tuple(class_names)
    unknown = [name for name in dataset.class_names if name not in names]
    if unknown and default_list:
        raise InputError(f"{source}: category {unknown[0]!r} is not an ImageNet VID class, the default class list; "
                         "set data.class_names to the data's classes")
    if unknown:
        raise InputError(f"{source}: category {unknown[0]!r} is not in data.class_names ({', '.join(names)}); "
                         "add it there or rename it in the data")
    absent = [name for name in names if name not in dataset.class_names]
    if absent and training:
        raise InputError(f"{source}: has no category {absent[0]!r} of data.class_names (its categories: "
                         f"{', '.join(dataset.class_names)}); remove it from data.class_names")
    if absent:
        logger.warning("%s: no category %s of data.class_names: their AP is not defined", source,
                       ", ".join(repr(name) for name in absent))
    to_new = np.asarray([0] + [names.index(name) + 1 for name in dataset.class_names], np.int64)
    videos = [dataclasses.replace(video, frames=[dataclasses.replace(frame, labels=to_new[frame.labels])
                                                 for frame in video.frames]) for video in dataset.videos]
    counted = np.bincount(np.concatenate([frame.labels for video in videos for frame in video.frames] + [[0]]),
                          minlength=len(names) + 1)
    empty = [name for label, name in enumerate(names, 1) if counted[label] == 0 and name not in absent]
    if empty:
        logger.warning("%s: no boxes of class %s", source, ", ".join(repr(name) for name in empty))
    return dataclasses.replace(dataset, videos=videos, class_names=names)


def check_frame_files(dataset: DatasetRecord, source: str) -> None:
    """A one-line ``FileNotFoundError`` naming the first missing frame file of ``dataset`` and how many are
    missing (``source``: the annotation file and its config key)."""
    paths = [frame.image_path for frame in dataset.frames()]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise InputNotFound(f"{source}: frame file not found: {missing[0]} ({len(missing)} of {len(paths)} "
                                "frame files missing; file_name is relative to the JSON's folder, or to "
                                "data.root when set)")


def keep_classes(dataset: DatasetRecord, class_names: Sequence[str], *, source: str) -> tuple[DatasetRecord, int]:
    """``dataset`` reduced to the boxes of ``class_names``, relabelled in that order, and how many boxes were left
    out (``source`` names the option or file in the one-line error for a class the dataset does not have)."""
    names = tuple(class_names)
    missing = [name for name in names if name not in dataset.class_names]
    if missing:
        raise InputError(f"{source}: class {missing[0]!r} is not a class of the data "
                         f"({', '.join(dataset.class_names)})")
    to_new = np.asarray([0] + [names.index(name) + 1 if name in names else 0 for name in dataset.class_names],
                        np.int64)
    left_out = 0

    def reduced(frame):
        nonlocal left_out
        kept = to_new[frame.labels] > 0
        left_out += int((~kept).sum())
        flags = {name: None if getattr(frame, name) is None else np.asarray(getattr(frame, name))[kept]
                 for name in ("occluded", "degraded")}
        return dataclasses.replace(frame, boxes=frame.boxes[kept], labels=to_new[frame.labels][kept],
                                   track_ids=frame.track_ids[kept], **flags)

    videos = [dataclasses.replace(video, frames=[reduced(frame) for frame in video.frames])
              for video in dataset.videos]
    return dataclasses.replace(dataset, videos=videos, class_names=names), left_out
