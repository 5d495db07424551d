"""Video input/output for inference: streamed frame sources (video files, image folders, frame lists, live
streams), an MP4 writer (atomic, or live and playable while it grows) and box drawing.

Frames are RGB ``uint8 [H, W, 3]`` numpy arrays, yielded one at a time so that memory does not grow with the
video's length. A source can be read several times (the predictor reads the support frames first, then streams
all frames); every read yields the same frames.

PyAV is imported where a video is opened or written, not with the module: ``dsfnet --help`` and frame-folder
inference then never load FFmpeg's libraries.

Frame counting (a decision): a video's frame count is found by one decode pass (``FrameSource.count``). The
container's own count is missing for many containers (Matroska, WebM, raw H.264 have none) and wrong for
truncated files, and the support-set indices must point at frames that really decode. Decoding is cheap next to
the network (hundreds of frames/s for VID-sized video), so the exact count is worth the extra pass.

Live streams (:class:`LiveSource`: URLs FFmpeg opens, V4L2 cameras, ``-`` for standard input) are read once,
as they arrive, with no counting pass and no known length; see the class for stalls and timeouts.

Damaged input: a packet that fails to decode is skipped with a warning naming the file and the frame index, and
decoding goes on with the next packets; a stream that ends earlier than its container announces warns the same
way. A file that is not a video, has no video stream or has no decodable frame raises ``ValueError`` naming it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import struct
import threading
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dsfnet.atomic import temporary_sibling
from dsfnet.data.images import load_frame
from dsfnet.errors import InputError, InputNotFound, StreamStalled

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FPS = 25.0
#: seconds without a new frame after which a live stream counts as stalled or dropped
DEFAULT_STALL_TIMEOUT = 10.0


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
        live: a stream that can be read only once, as it arrives, and whose length is unknown (``count`` is
            ``None``); only causal sampling can run on it.
    """

    name: str
    path: str
    fps: float = DEFAULT_FPS
    live: bool = False

    def count(self) -> Optional[int]:
        """Number of frames (computed once, then cached); ``None`` for a live stream."""
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
            raise InputError(f"{folder}: folder holds no image frames ({', '.join(IMAGE_EXTENSIONS)})")
        return cls(files, name=folder.name, path=str(folder), fps=fps)

    def count(self) -> int:
        return len(self.paths)

    def frames(self, stop: Optional[int] = None) -> Iterator[np.ndarray]:
        for index in range(len(self.paths[:stop])):
            yield self.frame(index)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` alone (image files can be read in any order)."""
        path = self.paths[index]
        array = np.asarray(load_frame(path))  # same decoding rules as training; errors name the file
        size = array.shape[:2]
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise InputError(f"{path}: frame size {size[1]}x{size[0]} differs from the first frame's "
                             f"{self._size[1]}x{self._size[0]} (all frames of a video must share a size)")
        return array


class VideoFileSource(FrameSource):
    """A video file of any container/codec that PyAV (FFmpeg) decodes.

    Every frame is converted to RGB (``rgb24``), whatever its pixel format (gray, YUV 4:2:0, odd sizes); a frame
    whose size differs from the first one's (a mid-stream resolution change) is rescaled to the first size.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = str(path)
        self.name = Path(path).name
        if not Path(path).exists():
            raise InputNotFound(f"input not found: {path}")
        if not Path(path).is_file():
            raise InputError(f"{path}: not a file")
        container = self._open()
        try:
            stream = container.streams.video[0]
            self.fps = stream_fps(stream)
            # what the container announces, to tell a truncated file: a frame count (MP4, AVI; 0 if none) and a
            # duration in seconds (Matroska and MPEG-TS announce only this one)
            self.announced_frames = int(stream.frames or 0)
            self.announced_seconds = (self.announced_frames / self.fps if self.announced_frames
                                      else (container.duration or 0) / 1e6)
            self._frame_interval = 1 / self.fps  # the announced one (--fps may replace self.fps later)
            self._start_seconds = None if container.start_time is None else container.start_time / 1e6
        finally:
            container.close()
        self._count: Optional[int] = None
        self._size: Optional[tuple[int, int]] = None

    def _open(self):
        return open_video(self.path, self.path, "not a video file FFmpeg can read",
                          "no video stream (not a video, or a truncated MP4 whose index is lost)")

    def count(self) -> int:
        """The frames that decode (one pass); warns when the stream ends before the container said it would."""
        if self._count is None:
            count, start, end = 0, self._start_seconds, None
            for frame in self._decode(stop=None, convert=False, warn=True):
                count += 1
                if frame.time is not None:
                    start = frame.time if start is None else min(start, frame.time)
                    frame_end = frame.time + float((frame.duration or 0) * frame.time_base)
                    end = frame_end if end is None else max(end, frame_end)
            if count == 0:
                raise InputError(f"{self.path}: the video has no decodable frame")
            seconds = None if end is None else end - start
            if self._ended_early(count, seconds):
                reached = "" if seconds is None else f" ({seconds:.2f} s)"
                announced = f"{self.announced_seconds:.2f} s"
                if self.announced_frames:
                    announced = f"{self.announced_frames} frames ({announced})"
                warnings.warn(f"{self.path}: the stream ended at frame {count}{reached} but the container announces "
                              f"{announced}; the file is probably truncated (using the {count} decoded frames)",
                              stacklevel=2)
            self._count = count
        return self._count

    def _ended_early(self, count: int, seconds: Optional[float]) -> bool:
        """Whether ``count`` frames spanning ``seconds`` (None: no timestamps) end before what the container
        announces: not all the frames it counts, and (with timestamps) more than 1.5 frame intervals before the
        duration it announces. Time decides, not a count estimated as duration x rate: a variable-frame-rate file
        has fewer frames than that and still decodes to its end."""
        if self.announced_frames and count >= self.announced_frames - 1:
            return False
        if seconds is None:
            return bool(self.announced_frames)
        interval = max(self._frame_interval, seconds / count)  # the mean one of variable-rate video is longer
        return seconds < self.announced_seconds - 1.5 * interval

    def frames(self, stop: Optional[int] = None) -> Iterator[np.ndarray]:
        return self._decode(stop=stop, convert=True, warn=self._count is None)

    def _decode(self, stop: Optional[int], convert: bool, warn: bool) -> Iterator:
        """The frames ``0 .. stop-1``: RGB arrays (``convert``) or PyAV's frames."""
        if stop is not None and stop <= 0:
            return
        container = self._open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(decoded_frames(container, stream, self.path, warn)):
                if self._size is None:
                    self._size = (frame.height, frame.width)
                yield to_rgb(frame, self._size) if convert else frame
                if stop is not None and index + 1 >= stop:
                    return
        finally:
            container.close()


def open_video(url: str, label: str, unreadable: str, no_video: str, **options):
    """``av.open(url, **options)`` for reading, with a video stream; otherwise ``ValueError("label: unreadable
    (FFmpeg's reason)")`` or ``ValueError("label: no_video")``. A timeout (``av.ExitError``) is raised as it is."""
    import av

    try:
        container = av.open(url, "r", **options)
    except av.ExitError:
        raise
    except av.FFmpegError as error:
        raise InputError(f"{label}: {unreadable} ({_ffmpeg_message(error)})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{label}: {no_video}")
    return container


def decoded_frames(container, stream, path: str, warn: bool) -> Iterator:
    """The decoded ``av.VideoFrame`` s of ``stream``: a packet that fails to decode is skipped, a read error ends
    the stream (each with a warning naming ``path`` and the frame index when ``warn``). A read interrupted by the
    container's timeout (``av.ExitError``) is raised."""
    import av

    index = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.ExitError:
            raise
        except av.FFmpegError as error:
            if warn:
                warnings.warn(f"{path}: reading stopped at frame {index} "
                              f"({_ffmpeg_message(error)}); using the frames decoded so far", stacklevel=3)
            break
        try:
            decoded = packet.decode()  # the final empty packet flushes the decoder
        except av.FFmpegError as error:
            if warn:
                warnings.warn(f"{path}: cannot decode a packet at frame {index} "
                              f"({_ffmpeg_message(error)}); skipping it and going on", stacklevel=3)
            continue
        for frame in decoded:
            yield frame
            index += 1


def to_rgb(frame, size: tuple[int, int]) -> np.ndarray:
    """An ``av.VideoFrame`` as RGB ``uint8 [H, W, 3]`` of ``size`` (H, W), rescaled if its own size differs."""
    height, width = size
    if (frame.height, frame.width) != (height, width):
        frame = frame.reformat(width=width, height=height)
    return frame.to_ndarray(format="rgb24")


def stream_fps(stream) -> float:
    """The frame rate a video stream announces, or ``DEFAULT_FPS`` when it announces none (or nonsense)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else DEFAULT_FPS
    return fps if 0 < fps <= 1000 else DEFAULT_FPS


def _ffmpeg_message(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(error).__name__


# --------------------------------------------------------------------------------------------------- live
#: URL schemes of streaming protocols FFmpeg opens (``file:`` URLs and plain paths are files, not live)
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "srt", "rtp", "pipe")


def is_live_input(source) -> bool:
    """``-`` (a container stream on standard input), a V4L2 camera ``/dev/videoN`` or a streaming URL."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = str(source)
    if text == "-" or re.fullmatch(r"/dev/video\d+", text):
        return True
    scheme, separator, _ = text.partition(":")
    return bool(separator) and scheme.lower() in LIVE_SCHEMES


class LiveSource(FrameSource):
    """A live stream, read once as it arrives: any URL FFmpeg opens (``rtsp://``, ``rtmp://``, ``http(s)://``,
    ``tcp://``, ``udp://``, ...), a V4L2 camera (``/dev/video0``) or ``-`` (a container stream on standard input).

    No counting pass and no known length (``count()`` is ``None``); ``frames`` can be called once. A reader thread
    demuxes and decodes into a queue of ``queue_size`` frames (so decoding overlaps the model, and a slow
    consumer holds the sender back instead of buffering without bound). Frames are RGB ``uint8 [H, W, 3]`` of the
    first frame's size (a later size change is rescaled), as for video files.

    ``options`` are FFmpeg's options for opening the input (e.g. ``rtsp_transport=tcp`` for RTSP over TCP,
    ``video_size=1280x720`` / ``framerate=30`` / ``input_format=mjpeg`` for a camera).

    Stalls: when no frame arrives for ``timeout`` seconds, ``frames`` raises :class:`StreamStalled` naming the
    stream and the timeout; the end of the stream (the sender closing it) simply ends the iteration. Opening waits
    up to ``timeout`` as well.
    """

    live = True

    def __init__(self, spec: str, fps: Optional[float] = None, timeout: float = DEFAULT_STALL_TIMEOUT,
                 queue_size: int = 8, options: Optional[dict[str, str]] = None):
        if not timeout > 0:
            raise InputError(f"the stall timeout must be > 0 seconds, got {timeout}")
        if re.fullmatch(r"/dev/video\d+", spec) and not Path(spec).exists():
            raise InputNotFound(f"camera not found: {spec} (no such V4L2 device)")
        self.path = spec
        self.name = "stdin" if spec == "-" else Path(spec).name if spec.startswith("/dev/") else spec
        self.timeout = float(timeout)
        self.options = dict(options or {})
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._closed = threading.Event()
        self._read_once = False
        threading.Thread(target=self._read, name=f"dsfnet reader {spec}", daemon=True).start()
        _, announced_fps = self._next()  # ("open", fps), or the reason the stream cannot be opened
        self.fps = fps or announced_fps

    def count(self) -> None:
        return None

    def frames(self, stop: Optional[int] = None) -> Iterator[np.ndarray]:
        if self._read_once:
            raise RuntimeError(f"{self.path}: a live stream can be read only once")
        self._read_once = True
        return self._frames(stop)

    def close(self) -> None:
        """Stop reading: ``frames`` ends at its next frame (safe from a signal handler); the reader thread ends at
        its next frame or timeout."""
        self._closed.set()

    def _frames(self, stop: Optional[int]) -> Iterator[np.ndarray]:
        delivered = 0
        try:
            while stop is None or delivered < stop:
                kind, image = self._next()
                if kind == "end":
                    return
                delivered += 1
                yield image
        finally:
            self.close()

    def _next(self) -> tuple[str, object]:
        """The reader's next message; ``("end", None)`` once the source is closed (e.g. from a Ctrl-C handler)."""
        # the reader's own FFmpeg timeout normally fires first; this one also covers reads FFmpeg cannot interrupt
        deadline = time.monotonic() + self.timeout + 1.0
        while True:
            if self._closed.is_set():
                return "end", None
            try:
                kind, value = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if time.monotonic() > deadline:
                    self.close()
                    raise self._stalled() from None
        if kind == "error":
            self.close()
            raise value
        return kind, value

    def _stalled(self) -> StreamStalled:
        return StreamStalled(f"{self.path}: no frame for {self.timeout:g} s, the stream stalled or was dropped "
                             "(the limit is --timeout)")

    def _open(self):
        import av

        if self.path == "-" and _stdin_is_empty(self.timeout):  # FFmpeg would say "Invalid data found ..."
            raise InputError("-: the stream on standard input is empty (nothing was piped in)")
        url = "pipe:0" if self.path == "-" else self.path
        fmt = "v4l2" if self.path.startswith("/dev/video") else None
        try:
            return open_video(url, self.path, "cannot open the stream", "the stream has no video", format=fmt,
                              options=self.options, timeout=(self.timeout, self.timeout))
        except av.ExitError:
            raise self._stalled() from None

    def _read(self) -> None:
        """Reader thread: open, then queue ("open", fps), ("frame", image)..., ("end", None) or ("error", exc)."""
        import av

        try:
            container = self._open()
        except (ValueError, StreamStalled) as error:
            self._put(("error", error))
            return
        try:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"  # frame threading would hold frames back by one per thread
            self._put(("open", stream_fps(stream)))
            size = None
            for frame in decoded_frames(container, stream, self.path, warn=True):
                size = size or (frame.height, frame.width)
                if not self._put(("frame", to_rgb(frame, size))):
                    return
            self._put(("end", None))
        except av.ExitError:
            self._put(("error", self._stalled()))
        finally:
            container.close()

    def _put(self, item: tuple) -> bool:
        """Queue ``item`` (waiting while the queue is full); False once the source is closed."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _stdin_is_empty(timeout: float) -> bool:
    """Whether standard input ends before its first byte, seen without reading it: an empty pipe (closed by the
    writer), an empty file or ``/dev/null``. Waits up to ``timeout`` seconds for a pipe to have data or end
    (False if it does neither; the stall is the reader's to report)."""
    import array
    import fcntl
    import select
    import stat
    import termios

    status = os.fstat(0)
    if stat.S_ISREG(status.st_mode):
        return status.st_size <= os.lseek(0, 0, os.SEEK_CUR)
    if stat.S_ISCHR(status.st_mode):
        return status.st_rdev == os.stat(os.devnull).st_rdev
    if not (stat.S_ISFIFO(status.st_mode) or stat.S_ISSOCK(status.st_mode)):
        return False
    if not select.select([0], [], [], timeout)[0]:
        return False
    waiting = array.array("i", [0])
    fcntl.ioctl(0, termios.FIONREAD, waiting)  # readable with no byte waiting: the writer closed it
    return waiting[0] == 0


def open_source(source: Union[str, os.PathLike, FrameSource, Sequence[str]], fps: Optional[float] = None,
                timeout: float = DEFAULT_STALL_TIMEOUT, options: Optional[dict[str, str]] = None) -> FrameSource:
    """A :class:`FrameSource` for a video file, a folder of frames, a list of image paths, a live stream
    (:func:`is_live_input`: a URL, a V4L2 device, ``-``; ``timeout`` is its stall timeout, ``options`` FFmpeg
    options for opening it) or a source itself.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not a video / no decodable frame / an empty folder (the message names the path).
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (list, tuple)):
        return FrameListSource(source, name="frames", fps=fps or DEFAULT_FPS)
    if is_live_input(source):
        return LiveSource(str(source), fps=fps, timeout=timeout, options=options)
    path = Path(source)
    if not path.exists():
        raise InputNotFound(f"input not found: {path}")
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

    ``live=True`` (for live streams) writes ``path`` itself as it goes, so that it can be followed while it grows
    and stays playable whatever happens: a fragmented MP4 with one fragment per frame, flushed to the file at
    once (the encoder is tuned for zero latency, so it holds no frame back; the muxer writes a frame's fragment
    when the next frame comes), and :meth:`abort` closes the file cleanly instead of removing it. A kill -9 loses
    at most the frames not yet in a fragment. A write that fails (a full disk) leaves part of a fragment in the
    file: :meth:`abort` then cuts the file back to the end of its last complete fragment, which it follows after
    every frame (:func:`complete_fragments`).

    H.264 (``libx264``, yuv420p) when this FFmpeg build has it, else MPEG-4 Part 2. yuv420p needs even sizes:
    an odd width/height is padded by one black column/row at the right/bottom.
    """

    def __init__(self, path: Union[str, os.PathLike], fps: float = DEFAULT_FPS, codec: Optional[str] = None,
                 live: bool = False):
        self.path = Path(path)
        self.fps = fps
        self.codec = codec or preferred_codec()
        self.live = live
        if live:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = str(self.path)
        else:
            fd, self._tmp = temporary_sibling(self.path, suffix=".tmp.mp4")
            os.close(fd)  # PyAV opens the file by name
        self._container = None
        self._stream = None
        self.frames = 0  # frames written
        self._complete = Fragments(0, 0)  # live: what the file holds in whole fragments
        self._broken = False  # a write failed part-way: the file may end in part of a fragment

    def _start(self, height: int, width: int) -> None:
        import av

        options, codec_options = {}, {}
        if self.live:
            options = {"movflags": "frag_every_frame+empty_moov+default_base_moof", "flush_packets": "1"}
            codec_options = {"tune": "zerolatency"} if self.codec == "libx264" else {}
        self._container = av.open(self._tmp, "w", format="mp4", options=options)
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream(self.codec, rate=rate, options=codec_options)
        self._stream.width = width + width % 2
        self._stream.height = height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._size = (height, width)

    def write(self, image: np.ndarray) -> None:
        """Append one RGB ``uint8 [H, W, 3]`` frame (all frames must share the first one's size)."""
        import av

        height, width = image.shape[:2]
        if self._container is None:
            self._start(height, width)
        elif (height, width) != self._size:
            raise InputError(f"frame size {width}x{height} differs from the video's {self._size[1]}x{self._size[0]}")
        if (self._stream.height, self._stream.width) != (height, width):
            padded = np.zeros((self._stream.height, self._stream.width, 3), np.uint8)
            padded[:height, :width] = image
            image = padded
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"))
        self.frames += 1

    def _encode(self, frame) -> None:
        """Encode ``frame`` (``None``: flush the encoder) and mux its packets; live: then follow the fragments."""
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError:
            self._broken = True
            raise
        if self.live:
            self._complete = complete_fragments(self._tmp, self._complete)

    def close(self) -> Path:
        """Flush, close and move the file into place; returns the final path."""
        if self._container is None:
            self._drop()
            raise InputError(f"{self.path}: no frame was written")
        self._encode(None)
        try:
            self._container.close()
        except OSError:
            self._broken = True
            raise
        self._container = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> int:
        """Files: drop the partial file. Live: close the file cleanly, playable up to the last frame written, or,
        when it cannot be completed (a full disk), cut it back to its last complete fragment. Returns the number
        of frames the file keeps (0 for files, and for a live file that got no frame: it is removed)."""
        if not self.live or self.frames == 0:
            self._drop()
            return 0
        if self._container is not None and not self._broken:
            with contextlib.suppress(OSError):
                self.close()
        if self._container is not None:
            self._close_quietly()
            os.truncate(self._tmp, self._complete.end)
            self.frames = self._complete.frames
        return self.frames

    def _close_quietly(self) -> None:
        try:
            self._container.close()
        except Exception:  # closing a half-written container may fail; the caller removes or cuts the file
            pass
        self._container = None

    def _drop(self) -> None:
        if self._container is not None:
            self._close_quietly()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Close the file after the block; :meth:`abort` it after an exception in the block or in closing."""
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise


class Fragments(NamedTuple):
    """The whole fragments at the start of a fragmented MP4 file: they end at byte ``end`` and hold ``frames``
    frames (one per fragment, as :class:`VideoWriter` writes them)."""

    end: int
    frames: int


def complete_fragments(path: Union[str, os.PathLike], known: Fragments = Fragments(0, 0)) -> Fragments:
    """The whole fragments of the fragmented MP4 file ``path``, read on from ``known`` (the file's top-level boxes
    after ``known.end``: ``ftyp`` and ``moov`` first, then a ``moof`` and an ``mdat`` per fragment). A box that the
    file holds whole counts; a ``moof`` only with its ``mdat``, which counts one frame."""
    end, frames = known
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        position = end
        while position + 8 <= size:
            handle.seek(position)
            header = handle.read(16)
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1 and len(header) == 16:  # a 64-bit size follows the type
                length = struct.unpack(">Q", header[8:])[0]
            if length < 8 or position + length > size:  # 0 (up to the end of the file) or not written whole
                break
            position += length
            if kind != b"moof":
                end, frames = position, frames + (kind == b"mdat")
    return Fragments(end, frames)


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
