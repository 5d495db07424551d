"""Importers of annotation-tool exports, behind ``dsfnet convert --format``: each reads one file into
:class:`~dsfnet.data.importers.annotations.ImportedVideo` s, which
:func:`~dsfnet.data.importers.writer.write_imported` turns into CocoVID JSON and frames.

=========  ==========================================  =====================================
format     file                                        module
=========  ==========================================  =====================================
``cvat``   CVAT for video 1.1 XML                      :mod:`dsfnet.data.importers.cvat`
``mot``    MOTChallenge ``gt/gt.txt``                  :mod:`dsfnet.data.importers.mot`
``coco``   COCO per-image JSON (also CocoVID / TAO)    :mod:`dsfnet.data.importers.coco`
=========  ==========================================  =====================================

A new format is one module with a ``read(path, media) -> list[ImportedVideo]`` function and a line in
:data:`IMPORTERS`; options of one format only (MOT's ``min_visibility``) are keyword arguments of its reader.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional, Sequence

from dsfnet.data.importers.annotations import ImportedVideo
from dsfnet.data.importers.coco import read_coco
from dsfnet.data.importers.cvat import read_cvat
from dsfnet.data.importers.mot import read_mot
from dsfnet.errors import InputError, InputNotFound

#: format name -> reader of one annotation file (``media``: the ``--media`` path, or ``None``)
IMPORTERS: dict[str, Callable[..., list[ImportedVideo]]] = {
    "cvat": lambda path, media: [_with_media(video, media) for video in read_cvat(path)],
    "mot": lambda path, media, min_visibility=0.0: [_with_media(video, media)
                                                    for video in read_mot(path, min_visibility)],
    "coco": lambda path, media: read_coco(path, media),
}

#: file suffix -> the format it means when ``--format`` is not given
SUFFIXES = {".xml": "cvat", ".txt": "mot", ".json": "coco"}


def _with_media(video: ImportedVideo, media: Optional[Path]) -> ImportedVideo:
    """``video`` reading its frames from ``media``: a video file or frame folder, or a folder holding the media
    the annotation file names (then looked up there by its file name)."""
    if media is None:
        return video
    if media.is_dir() and video.media is not None and (media / video.media.name).exists():
        media = media / video.media.name
    return dataclasses.replace(video, media=media, name=media.name)


def format_of(path: Path, fmt: Optional[str]) -> str:
    """``fmt``, or the format ``path``'s suffix means."""
    if fmt is not None:
        return fmt
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: cannot tell the annotation format from the suffix; give --format "
                         f"({', '.join(IMPORTERS)})")
    return SUFFIXES[path.suffix.lower()]


def read_annotations(paths: Sequence[Path], fmt: Optional[str] = None, media: Optional[Path] = None,
                     min_visibility: Optional[float] = None) -> list[ImportedVideo]:
    """Every video of the annotation files ``paths`` (``fmt``: one of :data:`IMPORTERS`, or by suffix;
    ``min_visibility``: MOT rows below it are left out, refused for other formats)."""
    if media is not None and len(paths) > 1 and not media.is_dir():
        raise InputError(f"--media {media}: with several annotation files give a folder holding their media")
    videos = []
    for path in paths:
        if not path.is_file():
            raise InputNotFound(f"annotation file not found: {path}")
        name = format_of(path, fmt)
        options = {}
        if min_visibility is not None:
            if name != "mot":
                raise InputError(f"--min-visibility: applies to MOTChallenge gt.txt files only ({path} is {name})")
            options["min_visibility"] = min_visibility
        videos.extend(IMPORTERS[name](path, media, **options))
    return videos
