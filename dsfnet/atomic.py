"""Atomic file output: write to a temporary file in the target folder, then ``os.replace`` it into place.

A crash or an error while writing never leaves a partial file under the final name; a read-only folder or a full
disk raises :class:`~dsfnet.io_errors.WriteError` naming the final path. Folders are replaced whole the same way
(:func:`replaced_directory`). A process killed half-way (SIGKILL, a crashed machine) leaves its temporary file
behind: :func:`remove_stale_temporaries` clears them when the next run starts in the folder. Files that grow while
they are read (``metrics.jsonl``, a live stream's ``detections.jsonl``) gain whole lines or nothing
(:func:`append_whole`, :func:`drop_last_lines`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, BinaryIO, Iterator, Optional

from dsfnet.errors import OutputExists
from dsfnet.io_errors import WriteError, is_write_failure

logger = logging.getLogger(__name__)

# what temporary_sibling (mkstemp: 8 random characters) leaves behind when its writer is killed: ".NAME.XXXXXXXX.tmp"
# (".NAME.XXXXXXXX.tmp.mp4" for the MP4 writer)
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.mp4)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_sibling(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """``(fd, name)`` of a new hidden temporary file next to ``path`` (its folder created), with the permissions a
    plain ``open()`` would give (mkstemp creates 0600 files); the caller replaces ``path`` with it or removes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    try:
        fd, tmp = temporary_sibling(path)
    except OSError as error:
        _raise_described(error, path)
    try:
        if "b" in mode:
            handle = os.fdopen(fd, mode)
        else:
            handle = os.fdopen(fd, mode, encoding=encoding, newline="\n")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        failure = _write_failure(error, path, tmp)
        if failure is not None:
            raise failure from None
        raise


def _write_failure(error: BaseException, path: Path, tmp: Optional[str]) -> Optional[WriteError]:
    """``error`` as a :class:`WriteError` naming ``path`` if it is a failed write of this file (not of another file
    the caller's code touched inside the ``with`` block, and not one already described)."""
    if isinstance(error, WriteError) or not is_write_failure(error):
        return None
    if error.filename not in (None, tmp, str(path)):
        return None
    return WriteError(path, error.errno)


def _raise_described(error: OSError, path: Path) -> None:
    """Re-raise an error of preparing to write ``path`` (creating its folder or temporary file)."""
    if is_write_failure(error):
        raise WriteError(path, error.errno) from None
    raise error


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating the parent folder."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def discard(path: str | os.PathLike) -> bool:
    """Remove the file ``path`` if it exists (an earlier run's output that no longer belongs); ``True`` if it did."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


@contextlib.contextmanager
def replaced_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder's whole content in a temporary sibling (yielded), then swap it in as ``path``.

    A non-empty ``path`` is refused (``FileExistsError``) unless ``overwrite``; then it is replaced whole, never
    mixed with the new files. On any failure the partial sibling is removed and ``path`` stays as it was.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExists(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputExists(f"{path} is not empty: pass --overwrite to replace it whole (its files would "
                              "otherwise be mixed with the new ones)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as error:
        _raise_described(error, path)
    try:
        yield build
        os.chmod(build, 0o777 & ~_umask())  # mkdtemp creates 0700
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old.tmp", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(build, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writes left in ``folder`` (top level; none if it does not exist);
    returns them. Call it only where no other process is writing into ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [path for path in folder.iterdir() if path.is_file() and _TEMPORARY.match(path.name)]
    size = 0
    for path in stale:
        with contextlib.suppress(OSError):
            size += path.stat().st_size
            path.unlink()
    if stale:
        logger.info("removed %d stale temporary file(s) (%.1f MB) left by interrupted writes in %s", len(stale),
                    size / 2**20, folder)
    return stale


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` and a newline to the text file ``path``, or leave the file as it was (a full disk cuts no
    line in half: :class:`WriteError` naming ``path``)."""
    path = Path(path)
    try:
        with path.open("ab", buffering=0) as handle:
            append_whole(handle, (line + "\n").encode("utf-8"))
    except OSError as error:
        _raise_described(error, path)


def append_whole(handle: BinaryIO, data: bytes) -> None:
    """Append ``data`` to the end of the unbuffered binary file ``handle`` (``open(path, "ab", buffering=0)``)
    whole, or not at all: a write that fails part-way (a full disk, a file size limit) is cut off the file again
    and :class:`WriteError` naming the file raised. Unbuffered, because a buffered file would write the rest of a
    failed write again when it is flushed or closed."""
    start = handle.seek(0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            view = view[handle.write(view):]  # a write may be short (the disk filled up): the next one raises
    except OSError as error:
        os.ftruncate(handle.fileno(), start)
        _raise_described(error, Path(handle.name))


def drop_last_lines(path: str | os.PathLike, count: int, block: int = 1 << 16) -> list[bytes]:
    """Remove the last ``count`` lines of the file ``path`` (each ends with a newline) and return them, oldest
    first. Reads the file backwards from its end, only as far as those lines reach."""
    if count <= 0:
        return []
    with open(path, "rb+") as handle:
        end = position = handle.seek(0, os.SEEK_END)
        tail = b""
        # the file ends with a newline: the one before the last ``count`` lines is newline number count + 1
        while tail.count(b"\n") <= count and position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            tail = handle.read(step) + tail
        dropped = [piece + b"\n" for piece in tail.split(b"\n")[:-1][-count:]]
        handle.truncate(end - sum(map(len, dropped)))
    return dropped
