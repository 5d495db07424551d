"""Per-video detection files of a model evaluation: ``<out>/videos/<index>.npz``, one per finished video.

Each rank writes the file of a video when the video is done, atomically (temporary file + rename), so a file
that exists is complete and a killed run loses at most the videos in progress. ``index`` is the video's position
in the split; the file also holds the video's name, checked when it is read back. The arrays are those the
predictor returned (``float32`` boxes and scores, frame indices within the video), so merged results are
identical whether a video was detected in this run, by another rank or before a resume.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from dsfnet.atomic import atomic_write_bytes
from dsfnet.data.records import DatasetRecord
from dsfnet.errors import InputError
from dsfnet.evaluation.detections import Detections

FOLDER = "videos"


class VideoResultStore:
    """The per-video files under ``out_dir / "videos"``."""

    def __init__(self, out_dir: Path):
        self.folder = Path(out_dir) / FOLDER

    def path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.npz"

    def save(self, index: int, name: str, detections: Detections) -> None:
        """Write video ``index``'s detections (``frame_ids`` = frame indices within the video)."""
        buffer = io.BytesIO()
        np.savez(buffer, name=np.array(name), frame_ids=detections.frame_ids, labels=detections.labels,
                 scores=detections.scores.astype(np.float32), boxes=detections.boxes.astype(np.float32))
        atomic_write_bytes(self.path(index), buffer.getvalue())

    def load(self, index: int, name: str) -> Detections:
        path = self.path(index)
        with open(path, "rb") as handle, np.load(handle) as arrays:  # the file is closed also when unreadable
            if str(arrays["name"]) != name:
                raise InputError(f"{path} holds video {str(arrays['name'])!r}, not {name!r} (a file of another run)")
            return Detections(arrays["frame_ids"], arrays["labels"], arrays["scores"], arrays["boxes"])

    def finished(self) -> set[int]:
        """Indices of the videos whose file exists (temporary files of unfinished writes are not counted)."""
        if not self.folder.is_dir():
            return set()
        return {int(path.stem) for path in self.folder.glob("[0-9]*.npz")}

    def drop_unreadable(self, dataset: DatasetRecord) -> list[Path]:
        """Remove the finished videos' files that cannot be read back (a disk fault, a copy cut short), with a
        warning naming each, so that a resume detects those videos again instead of failing after all the others;
        returns their paths."""
        dropped = []
        for index in sorted(self.finished()):
            name = dataset.videos[index].name if index < len(dataset.videos) else "?"
            try:
                self.load(index, name)
            except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as error:
                warnings.warn(f"{self.path(index)} is unreadable ({type(error).__name__}: {error}); video {name} "
                              "is detected again")
                self.path(index).unlink()
                dropped.append(self.path(index))
        return dropped

    def clear(self, finished: bool = True) -> None:
        """Remove the temporary files of writes a killed run left behind and, with ``finished``, the files of the
        videos a previous run finished (a new run that does not resume)."""
        for path in self.folder.glob(".*.tmp"):
            path.unlink()
        for path in self.folder.glob("*.npz") if finished else ():
            path.unlink()

    def load_all(self, dataset: DatasetRecord) -> dict[int, Detections]:
        return {index: self.load(index, video.name) for index, video in enumerate(dataset.videos)}


def merge_in_split_order(dataset: DatasetRecord, per_video: Mapping[int, Detections]) -> Detections:
    """One :class:`Detections` of the split from each video's own (``frame_ids`` within the video), with
    ``frame_ids`` made positions in ``dataset.frames()``; videos in split order, each video's rows as given."""
    parts = []
    offset = 0
    for index, video in enumerate(dataset.videos):
        part = per_video[index]
        parts.append(Detections(part.frame_ids + offset, part.labels, part.scores, part.boxes))
        offset += len(video.frames)
    return Detections.concatenate(parts)
