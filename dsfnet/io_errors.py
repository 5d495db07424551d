"""One-line messages for failed writes: a read-only folder, missing permission, a full disk or quota.

Writes fail with an ``OSError`` whose text ("[Errno 28] No space left on device") often lacks the path, or,
inside ``torch.save``, with a ``RuntimeError`` ("[enforce fail at inline_container.cc:672] . unexpected pos");
:class:`WriteError` says which file could not be written and why, in words a user can act on.
"""

from __future__ import annotations

import errno
import os
from typing import Optional

#: errno -> how the message describes it; ``None`` phrasing means "no space ... while writing PATH".
_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
WRITE_ERRNOS = frozenset(_REASONS) | frozenset(_FULL)


class WriteError(OSError):
    """A write into ``path`` failed for a reason the user must fix (read-only, permission, full disk).

    Keeps the original ``errno``; ``str()`` is one line naming the path.
    """

    def __init__(self, path: str | os.PathLike, code: int):
        super().__init__(code, os.strerror(code), str(path))
        if code in _FULL:
            self.message = f"{_FULL[code]} while writing {path}"
        else:
            self.message = f"cannot write {path}: {_REASONS.get(code, os.strerror(code).lower())}"

    def __str__(self) -> str:
        return self.message


def is_write_failure(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` of the kinds :class:`WriteError` describes."""
    return isinstance(error, OSError) and error.errno in WRITE_ERRNOS


def as_write_error(error: OSError, path: Optional[str | os.PathLike] = None) -> WriteError:
    """``error`` as a :class:`WriteError` naming ``path`` (default: the path the error itself names)."""
    if isinstance(error, WriteError):
        return error
    return WriteError(path if path is not None else (error.filename or "<unknown file>"), error.errno)
