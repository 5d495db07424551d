"""Simulated write failures (no real mounts): a read-only folder and a full disk, by patching the calls that
create, write and rename files. Everything outside the given folder works as usual."""

from __future__ import annotations

import builtins
import errno
import fnmatch
import io
import os
from pathlib import Path

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _path_of(file) -> str:
    if isinstance(file, int):
        return os.readlink(f"/proc/self/fd/{file}")
    return os.path.realpath(os.fsdecode(file))


def _under(file, root: str) -> bool:
    path = _path_of(file)
    return path == root or path.startswith(root + os.sep)


def _raise(code: int, path=None):
    raise OSError(code, os.strerror(code), None if path is None else os.fspath(path))


def make_read_only(monkeypatch, root: str | os.PathLike) -> None:
    """Creating, writing, renaming or removing anything under ``root`` raises ``OSError(EROFS)``, as on a file
    system mounted read-only (creating an existing folder raises ``EEXIST``, as there)."""
    root = os.path.realpath(root)
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_replace, real_rename, real_unlink, real_rmdir = os.replace, os.rename, os.unlink, os.rmdir

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and _under(file, root):
            _raise(errno.EROFS, file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS and _under(path, root):
            _raise(errno.EROFS, path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if _under(path, root):
            _raise(errno.EEXIST if os.path.isdir(path) else errno.EROFS, path)
        return real_mkdir(path, *args, **kwargs)

    def guarded(real):
        def call(*paths, **kwargs):
            if any(_under(path, root) for path in paths):
                _raise(errno.EROFS, paths[0])
            return real(*paths, **kwargs)
        return call

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    for name, real in (("replace", real_replace), ("rename", real_rename), ("unlink", real_unlink),
                       ("rmdir", real_rmdir)):
        monkeypatch.setattr(os, name, guarded(real))


class _FailingWrites:
    """A file object whose writes raise ``error()``; everything else goes to the real file."""

    def __init__(self, handle, error):
        self._handle, self._error = handle, error

    def write(self, data):
        raise self._error()

    def writelines(self, lines):
        raise self._error()

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()


def fail_writes(monkeypatch, root: str | os.PathLike, pattern: str = "*", error=None) -> list[str]:
    """Writes into files under ``root`` whose name matches ``pattern`` raise ``error()`` (default: a full disk,
    ``OSError(ENOSPC)``); the files themselves can still be created, as on a full disk. Returns the list of
    paths whose writes failed (filled in as they happen)."""
    root = os.path.realpath(root)
    error = error or (lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    real_open = builtins.open
    failed: list[str] = []

    def fake_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if any(c in mode for c in "wax+") and _under(file, root):
            path = _path_of(handle.fileno())
            if fnmatch.fnmatch(Path(path).name, pattern):
                failed.append(path)
                return _FailingWrites(handle, error)
        return handle

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    return failed


def snapshot(folder: str | os.PathLike) -> dict:
    """``{relative path: bytes}`` of every file under ``folder``."""
    folder = Path(folder)
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(capsys, code: int, command: str, *needles: str) -> str:
    """Assert exit status 2 and a single ``dsfnet COMMAND: error: ...`` line on stderr holding every needle."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith(f"dsfnet {command}:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
