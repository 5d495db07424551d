"""The errors a user can act on, as opposed to bugs.

Everything the package raises because of what a user gave it (a file, a config key, an option, a stream, a
folder) is a :class:`DsfnetError` with a one-line message naming the file / key / option. The command line
(:mod:`dsfnet.cli`) prints those as one line and exits 2; any other exception is a bug and shows its traceback.
Each class also derives from the built-in type it replaces, so ``except ValueError`` / ``except OSError`` keep
catching what they caught before.

====================  ==================  ========================================================================
class                 also a              raised when
====================  ==================  ========================================================================
``InputError``        ``ValueError``      a file's contents, an option's value or an input cannot be used
``ConfigError``       ``ValueError``      a config file, key or ``key=value`` override is invalid (an InputError)
``InputNotFound``     ``FileNotFoundError``  a file, folder, camera or checkpoint the user named does not exist
``OutputExists``      ``FileExistsError``  an output would overwrite something (``--overwrite`` / ``--resume``)
``WriteError``        ``OSError``         a write failed: read-only folder, permission, full disk or quota
``Unavailable``       ``RuntimeError``    something the run needs is missing here: a package, a download, a device
``InputChanged``      ``RuntimeError``    an input read a second time gave other frames (changed or decodes unstably)
``StreamStalled``     ``RuntimeError``    a live stream delivered no frame within its timeout
``RunFolderInUse``    ``RuntimeError``    another process holds a run folder's lock (train, eval, detect)
``TrainingDiverged``  ``RuntimeError``    the training loss became NaN / infinite (lower the lr, warm up, clip)
====================  ==================  ========================================================================
"""

from __future__ import annotations

import errno
import os

#: errno -> how :class:`WriteError` describes it; the _FULL ones read "no space ... while writing PATH".
_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
         errno.EFBIG: "file size limit reached (the file system's, or ulimit -f)"}
WRITE_ERRNOS = frozenset(_REASONS) | frozenset(_FULL)


class DsfnetError(Exception):
    """Base of the errors caused by user input or the environment; ``str()`` is one line a user can act on."""


class InputError(DsfnetError, ValueError):
    """A file's contents, an option's value or an input cannot be used (the message names it)."""


class ConfigError(InputError):
    """A configuration file or override is invalid; the message names the key."""


class InputNotFound(DsfnetError, FileNotFoundError):
    """A path (or camera) the user named does not exist."""


class OutputExists(DsfnetError, FileExistsError):
    """Writing the output would replace something that is there (the message says which option allows it)."""


class Unavailable(DsfnetError, RuntimeError):
    """Something the run needs is not available on this machine: an optional package, a download, a device, a
    launcher's environment (the message says how to get it)."""


class InputChanged(DsfnetError, RuntimeError):
    """An input read a second time gave other frames than the first time (it changed, or decodes unstably)."""


class StreamStalled(DsfnetError, RuntimeError):
    """A live stream delivered no frame within its timeout (it stalled, or the sender went away silently)."""


class RunFolderInUse(DsfnetError, RuntimeError):
    """Another process holds the run folder's lock."""


class TrainingDiverged(DsfnetError, RuntimeError):
    """The training loss is no longer finite: a setting to change (learning rate, warm-up, clipping), not a bug."""


class WriteError(DsfnetError, OSError):
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
