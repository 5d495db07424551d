"""One-line messages for failed writes: a read-only folder, missing permission, a full disk or quota.

Writes fail with an ``OSError`` whose text ("[Errno 28] No space left on device") often lacks the path, or,
inside ``torch.save``, with a ``RuntimeError`` ("[enforce fail at inline_container.cc:672] . unexpected pos");
:class:`dsfnet.errors.WriteError` says which file could not be written and why, in words a user can act on.
"""

from __future__ import annotations

import os
from typing import Optional

from dsfnet.errors import WRITE_ERRNOS, WriteError

__all__ = ["WRITE_ERRNOS", "WriteError", "as_write_error", "is_write_failure"]


def is_write_failure(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` of the kinds :class:`WriteError` describes."""
    return isinstance(error, OSError) and error.errno in WRITE_ERRNOS


def as_write_error(error: OSError, path: Optional[str | os.PathLike] = None) -> WriteError:
    """``error`` as a :class:`WriteError` naming ``path`` (default: the path the error itself names)."""
    if isinstance(error, WriteError):
        return error
    return WriteError(path if path is not None else (error.filename or "<unknown file>"), error.errno)
