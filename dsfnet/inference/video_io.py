"""Video input/output for inference: streamed frame sources (video files, image folders, frame lists),
an atomic MP4 writer and box drawing.

Frames are RGB ``uint8 [H, W, 3]`` numpy arrays, yielded one at a time so that memory does not grow with the
video's length. A source can be read several times (the predictor reads the support frames first, then streams
all frames); every read yields the same frames.

PyAV is imported where a video is opened or written, not with the module: ``dsfnet --help`` and frame-folder
inference then never load FFmpeg's libraries.

Frame counting (a decision): a video's frame count is found by one decode pass (``FrameSource.count``). The
container's own count is missing for many containers (Matroska, WebM, raw H.264 have none) and wrong for
truncated files, and the support-set indices must point at frames that really decode. Decoding is cheap next to
the network (hundreds of frames/s for VID-sized video), so the exact count is worth the extra pass.

Damaged input: a packet that fails to decode is skipped with a warning naming the file and the frame index, and
decoding goes on with the next packets; a stream that ends earlier than its container announces warns the same
way. A file that is not a video, has no video stream or has no decodable frame raises ``ValueError`` naming it.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dsfnet.atomic import temporary_sibling
from dsfnet.data.images import load_frame

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FPS = 25.0


def natural_key(name: str) -> list:
    """Sort key that orders ``frame2.jpg`` before ``frame10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------------------------------- sources
class FrameSource:
    """A sequence of RGB frames that can be streamed several times.

    Attributes:
        name: the name written to detection files (``"video"`` field).
        path: where the frames come from (file or folder), for messages.
        fps: frames per second for the annotated video.
    """

    name: str
    path: str
    fps: float = DEFAULT_FPS

    def count(self) -> int:
        """Number of frames (computed once, then cached)."""
        raise NotImplementedError

    def frames(self, stop: Optional[int] = None) -> Iterator[np.ndarray]:
        """Yield frames ``0 .. stop-1`` (all frames when ``stop`` is None) as ``uint8 [H, W, 3]`` RGB arrays."""
        raise NotImplementedError


class FrameListSource(FrameSource):
    """Image files in the given order (a folder of frames, or a dataset video's frame files)."""

    def __init__(self, paths: Sequence[Union[str, os.PathLike]], name: str, path: Optional[str] = None,
                 fps: float = DEFAULT_FPS):
        self.paths = [str(p) for p in paths]
        self.name = name
        self.path = path if path is not None else name
        self.fps = fps
        self._size: Optional[tuple[int, int]] = None

    @classmethod
    def from_folder(cls, folder: Union[str, os.PathLike], fps: float = DEFAULT_FPS) -> "FrameListSource":
        folder = Path(folder)
        files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                       key=lambda p: natural_key(p.name))
        if not files:
            raise ValueError(f"{folder}: folder holds no image frames ({', '.join(IMAGE_EXTENSIONS)})")
        return cls(files, name=folder.name, path=str(folder), fps=fps)

    def count(self) -> int:
        return len(self.paths)

    def frames(self, stop: Optional[int] = None) -> Iterator[np.ndarray]:
        for path in self.paths[:stop]:
            array = np.asarray(load_frame(path))  # same decoding rules as training; errors name the file
            size = array.shape[:2]
            if self._size is None:
                self._size = size
            elif size != self._size:
                raise ValueError(f"{path}: frame size {size[1]}x{size[0]} differs from the first frame's "
                                 f"{self._size[1]}x{self._size[0]} (all frames of a video must share a size)")
            yield array


class VideoFileSource(FrameSource):
    """A video file of any container/codec that PyAV (FFmpeg) decodes.

    Every frame is converted to RGB (``rgb24``), whatever its pixel format (gray, YUV 4:2:0, odd sizes); a frame
    whose size differs from the first one's (a mid-stream resolution change) is rescaled to the first size.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = str(path)
        self.name = Path(path).name
        if not Path(path).exists():
            raise FileNotFoundError(f"input not found: {path}")
        if not Path(path).is_file():
            raise ValueError(f"{path}: not a file")
        container = self._open()
        try:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else DEFAULT_FPS
            if not 0 < self.fps <= 1000:
                self.fps = DEFAULT_FPS
            self.announced_frames = int(stream.frames or 0)
            if not self.announced_frames and container.duration and self.fps:
                # containers without a frame count (e.g. Matroska) still announce a duration (microseconds)
                self.announced_frames = int(round(container.duration / 1e6 * self.fps))
        finally:
            container.close()
        self._count: Optional[int] = None
        self._size: Optional[tuple[int, int]] = None

    def _open(self):
        import av

        try:
            container = av.open(self.path, "r")
        except av.FFmpegError as error:
            raise ValueError(f"{self.path}: not a video file FFmpeg can read ({_ffmpeg_message(error)})") from None
        if not container.streams.video:
            container.close()
            raise ValueError(f"{self.path}: no video stream (not a video, or a truncated MP4 whose index is lost)")
        return container

    def count(self) -> int:
        if self._count is None:
            count = 0
            for _ in self._decode(stop=None, convert=False, warn=True):
                count += 1
            if count == 0:
                raise ValueError(f"{self.path}: the video has no decodable frame")
            if self.announced_frames and count < self.announced_frames - 1:
                warnings.warn(f"{self.path}: the stream ended at frame {count} but the container announces "
                              f"{self.announced_frames} frames; the file is probably truncated "
                              f"(using the {count} decoded frames)", stacklevel=2)
            self._count = count
        return self._count

    def frames(self, stop: Optional[int] = None) -> Iterator[np.ndarray]:
        return self._decode(stop=stop, convert=True, warn=self._count is None)

    def _decode(self, stop: Optional[int], convert: bool, warn: bool) -> Iterator[np.ndarray]:
        import av

        if stop is not None and stop <= 0:
            return
        container = self._open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            index = 0
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as error:
                    if warn:
                        warnings.warn(f"{self.path}: reading stopped at frame {index} "
                                      f"({_ffmpeg_message(error)}); using the frames decoded so far", stacklevel=3)
                    break
                try:
                    decoded = packet.decode()  # the final empty packet flushes the decoder
                except av.FFmpegError as error:
                    if warn:
                        warnings.warn(f"{self.path}: cannot decode a packet at frame {index} "
                                      f"({_ffmpeg_message(error)}); skipping it and going on", stacklevel=3)
                    continue
                for frame in decoded:
                    if convert:
                        yield self._to_rgb(frame)
                    else:
                        yield None
                    index += 1
                    if stop is not None and index >= stop:
                        return
        finally:
            container.close()

    def _to_rgb(self, frame) -> np.ndarray:
        if self._size is None:
            self._size = (frame.height, frame.width)
        height, width = self._size
        if (frame.height, frame.width) != (height, width):
            frame = frame.reformat(width=width, height=height)
        return frame.to_ndarray(format="rgb24")


def _ffmpeg_message(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(error).__name__


def open_source(source: Union[str, os.PathLike, FrameSource, Sequence[str]], fps: Optional[float] = None
                ) -> FrameSource:
    """A :class:`FrameSource` for a video file, a folder of frames, a list of image paths, or a source itself.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not a video / no decodable frame / an empty folder (the message names the path).
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (list, tuple)):
        return FrameListSource(source, name="frames", fps=fps or DEFAULT_FPS)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_dir():
        return FrameListSource.from_folder(path, fps=fps or DEFAULT_FPS)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return FrameListSource([path], name=path.name, path=str(path), fps=fps or DEFAULT_FPS)
    video = VideoFileSource(path)
    if fps:
        video.fps = fps
    return video


# --------------------------------------------------------------------------------------------------- writer
class VideoWriter:
    """Write RGB frames to an MP4 file atomically: frames go to a temporary file in the output folder, which
    :meth:`close` renames to ``path``; :meth:`abort` (or an exception inside ``with``) removes it.

    H.264 (``libx264``, yuv420p) when this FFmpeg build has it, else MPEG-4 Part 2. yuv420p needs even sizes:
    an odd width/height is padded by one black column/row at the right/bottom.
    """

    def __init__(self, path: Union[str, os.PathLike], fps: float = DEFAULT_FPS, codec: Optional[str] = None):
        self.path = Path(path)
        self.fps = fps
        self.codec = codec or preferred_codec()
        fd, self._tmp = temporary_sibling(self.path, suffix=".tmp.mp4")
        os.close(fd)  # PyAV opens the file by name
        self._container = None
        self._stream = None

    def write(self, image: np.ndarray) -> None:
        """Append one RGB ``uint8 [H, W, 3]`` frame (all frames must share the first one's size)."""
        import av

        height, width = image.shape[:2]
        if self._container is None:
            self._container = av.open(self._tmp, "w", format="mp4")
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._container.add_stream(self.codec, rate=rate)
            self._stream.width = width + width % 2
            self._stream.height = height + height % 2
            self._stream.pix_fmt = "yuv420p"
            self._size = (height, width)
        elif (height, width) != self._size:
            raise ValueError(f"frame size {width}x{height} differs from the video's {self._size[1]}x{self._size[0]}")
        if (self._stream.height, self._stream.width) != (height, width):
            padded = np.zeros((self._stream.height, self._stream.width, 3), np.uint8)
            padded[:height, :width] = image
            image = padded
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> Path:
        """Flush, close and move the file into place; returns the final path."""
        if self._container is None:
            self.abort()
            raise ValueError(f"{self.path}: no frame was written")
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # closing a half-written container may fail; the file is removed anyway
                pass
            self._container = None
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if os.path.exists(self._tmp) and self._container is not None:
                self.close()
        else:
            self.abort()


def preferred_codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


# --------------------------------------------------------------------------------------------------- drawing
_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
            (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180)]


def color_for(label: int) -> tuple[int, int, int]:
    return _PALETTE[(int(label) - 1) % len(_PALETTE)]


def draw_detections(image: np.ndarray, boxes: np.ndarray, labels: Sequence[int], class_names: Sequence[str],
                    scores: Sequence[float]) -> np.ndarray:
    """A copy of ``image`` (RGB ``uint8 [H, W, 3]``) with boxes ``[k, 4]`` and ``"class score"`` tags drawn."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    line = max(1, round(min(image.shape[:2]) / 240))
    for box, label, name, score in zip(np.asarray(boxes).reshape(-1, 4).tolist(), labels, class_names, scores):
        color = color_for(label)
        x1, y1, x2, y2 = box
        draw.rectangle([x1, y1, max(x1, x2), max(y1, y2)], outline=color, width=line)
        text = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        ty = y1 - th - 2 if y1 - th - 2 >= 0 else y1
        draw.rectangle([x1, ty, x1 + tw + 2, ty + th + 2], fill=color)
        draw.text((x1 + 1, ty - top + 1), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)
