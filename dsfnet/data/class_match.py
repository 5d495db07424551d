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


def match_classes(dataset: DatasetRecord, class_names: Sequence[str], *, source: str,
                  training: bool) -> DatasetRecord:
    """``dataset`` with labels renumbered to ``class_names``' order (label ``i`` = ``class_names[i - 1]``)."""
    names = tuple(class_names)
    unknown = [name for name in dataset.class_names if name not in names]
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
