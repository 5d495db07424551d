"""The frames of an imported video: JPEG files extracted with PyAV from a video file, or the image files of a
frame folder / a COCO file, in place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from dsfnet.data.importers.annotations import ImportedVideo
from dsfnet.errors import InputError, InputNotFound
from dsfnet.inference.video_io import FrameListSource, VideoFileSource

#: JPEG quality of extracted frames (visually lossless; PIL's default 75 blurs small objects)
JPEG_QUALITY = 95


@dataclass
class Frames:
    """Where an imported video's frames are: ``paths[i]`` is the final path of frame ``i`` (``None`` for frames
    not extracted), ``count`` the media's frame count, ``width`` x ``height`` its frame size."""

    paths: list
    count: int
    width: int
    height: int


def resolve_frames(video: ImportedVideo, build: Path, final: Path) -> Frames:
    """The frames of ``video``: a video file's frames that the annotations cover are written as
    ``build/<name>/NNNNNN.jpg`` (reported under ``final``, where ``build`` is moved when everything succeeded)."""
    if video.frame_files is not None:
        return _image_files(video.frame_files, video.source)
    if video.media is None:
        raise InputNotFound(f"{video.source}: the file names no video; give it with --media")
    if not video.media.exists():
        raise InputNotFound(f"{video.source}: media not found: {video.media} (give it with --media)")
    if video.media.is_dir():
        try:
            paths = FrameListSource.from_folder(video.media).paths
        except InputError as error:  # the folder holds no frames: say which annotation file named it
            raise InputError(f"{video.source}: {error}") from None
        return _image_files(paths, video.source)
    return _extract(video, build / video.name, final / video.name)


def _image_files(paths: list, source: Path) -> Frames:
    """The image files ``paths`` that the annotation file ``source`` names (messages name both)."""
    paths = [Path(path) for path in paths]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise InputNotFound(f"{source}: frame file not found: {missing[0]} ({len(missing)} of {len(paths)} "
                            "missing)")
    try:
        with Image.open(paths[0]) as image:
            width, height = image.size
    except (OSError, SyntaxError) as error:
        raise InputError(f"{source}: cannot decode image {paths[0]}: {error}") from None
    return Frames(paths, len(paths), width, height)


def _extract(video: ImportedVideo, folder: Path, final: Path) -> Frames:
    """Decode ``video.media`` once, writing the covered frames as JPEG; a file FFmpeg cannot decode is a
    ``ValueError`` naming it."""
    source = VideoFileSource(video.media)
    wanted = set(video.frames) if video.frames is not None else None
    folder.mkdir(parents=True)
    paths, size = [], None
    for index, array in enumerate(source.frames()):
        size = array.shape[1], array.shape[0]
        if wanted is None or index in wanted:
            Image.fromarray(array).save(folder / f"{index:06d}.jpg", quality=JPEG_QUALITY)
            paths.append(final / f"{index:06d}.jpg")
        else:
            paths.append(None)
    if size is None:
        raise InputError(f"{video.media}: the video has no decodable frame")
    return Frames(paths, len(paths), *size)
