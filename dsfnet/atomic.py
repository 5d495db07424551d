"""Atomic file output: write to a temporary file in the target folder, then ``os.replace`` it into place.

A crash or an error while writing never leaves a partial file under the final name; a read-only folder or a full
disk raises :class:`~dsfnet.io_errors.WriteError` naming the final path. Folders are replaced whole the same way
(:func:`replaced_directory`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional

from dsfnet.errors import OutputExists
from dsfnet.io_errors import WriteError, is_write_failure


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


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` and a newline to the text file ``path``, or leave the file as it was (a full disk cuts no
    line in half: the file is truncated back to its old length and :class:`WriteError` raised)."""
    path = Path(path)
    try:
        with path.open("a", encoding="utf-8", newline="\n") as handle:
            start = handle.tell()
            try:
                handle.write(line + "\n")
                handle.flush()
            except OSError:
                handle.truncate(start)
                raise
    except OSError as error:
        _raise_described(error, path)
