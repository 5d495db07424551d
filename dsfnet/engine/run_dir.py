"""The run folder of ``dsfnet train`` (and the output folders of ``eval`` / ``detect``): one run at a time, no
stale temporary files, the history of its config.

- **Lock**: :func:`locked_run_dir` holds an OS file lock (``fcntl.flock`` on ``<out>/.dsfnet-train.lock``; for
  ``eval`` / ``detect`` ``.dsfnet-eval.lock`` / ``.dsfnet-detect.lock``) for the run's lifetime, so a second
  ``dsfnet train`` into the same folder is refused instead of interleaving its metrics and checkpoints with the
  first one's (a second ``eval --resume`` would redo the same videos). The kernel releases the lock when the
  process dies, however it dies (a killed run never leaves the folder locked); a run that ends removes the lock
  file, and a folder that the run created and left empty (it failed its checks) is removed too.
- **Stale temporaries**: an atomic write killed half-way leaves its ``.NAME.XXXXXXXX.tmp`` sibling (for a
  checkpoint, hundreds of MB); they are removed when a run starts in the folder (holding the lock, so no other
  run of ours is writing them).
- **Config history**: ``config.yaml`` keeps the config the run started with; every ``--resume`` appends one line
  to ``resumes.jsonl``: the iteration it resumed from and the settings it changed (``{"train.lr": [old, new]}``,
  relative to the checkpoint it resumed from).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator, Optional

import yaml

from dsfnet.jsonable import changed_settings, jsonable
from dsfnet.atomic import atomic_write_text, remove_stale_temporaries
from dsfnet.errors import RunFolderInUse
from dsfnet.io_errors import as_write_error, is_write_failure

logger = logging.getLogger(__name__)


def lock_name(command: str) -> str:
    """The lock file of ``dsfnet COMMAND`` in its output folder."""
    return f".dsfnet-{command}.lock"


LOCK_NAME = lock_name("train")
RESUMES_NAME = "resumes.jsonl"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


# ---------------------------------------------------------------------------------------------- lock
@contextlib.contextmanager
def locked_run_dir(out_dir: Path, enabled: bool = True, command: str = "train") -> Iterator[None]:
    """Hold ``out_dir``'s lock for ``dsfnet COMMAND`` (creating the folder) and clear its stale temporary files;
    no-op if not ``enabled``.

    Raises:
        RunFolderInUse: another live process holds the lock (the message names its pid).
        WriteError: the folder or the lock file cannot be written (read-only, full disk).
    """
    if not enabled:
        yield
        return
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise (as_write_error(error, out_dir) if is_write_failure(error) else error) from None
    lock_path = out_dir / lock_name(command)
    fd = _acquire(lock_path, command)
    try:
        remove_stale_temporaries(out_dir)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # while still holding the lock: see _acquire
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only an empty folder: a run that failed before writing anything


def _acquire(lock_path: Path, command: str) -> int:
    """Open and lock ``lock_path`` of ``dsfnet COMMAND``; returns the descriptor (closing it releases the lock)."""
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise (as_write_error(error, lock_path) if is_write_failure(error) else error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderInUse(f"run folder {lock_path.parent} is in use by another dsfnet {command} ({holder}); "
                                 "wait for it to end, or choose another --out") from None
        except OSError as error:
            if error.errno not in _NO_LOCKS:
                os.close(fd)
                raise
            logger.warning("%s: the file system does not support locks; nothing stops a second run into this "
                           "folder", lock_path)
            return fd
        # the previous holder removes the file before it unlocks: if ours was removed meanwhile, lock the new one
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
                break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    except OSError as error:
        os.close(fd)
        raise (as_write_error(error, lock_path) if is_write_failure(error) else error) from None
    return fd


# ---------------------------------------------------------------------------------------------- config history
def record_config(out_dir: Path, config: dict, checkpoint: Optional[dict]) -> None:
    """Write ``config.yaml`` for a new run; for a resumed run keep it and append the changes to ``resumes.jsonl``.

    ``config`` is ``Config.to_dict()`` of this run, ``checkpoint`` the training checkpoint it resumes from.
    """
    out_dir = Path(out_dir)
    config = jsonable(config)
    config_path = out_dir / "config.yaml"
    if checkpoint is None or not config_path.is_file():
        original = config if checkpoint is None else jsonable(checkpoint["config"])
        atomic_write_text(config_path, yaml.safe_dump(original, sort_keys=False))
    if checkpoint is None:
        return
    record = {"iteration": int(checkpoint["iteration"]), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "changes": changed_settings(checkpoint["config"], config)}
    path = out_dir / RESUMES_NAME
    history = path.read_text() if path.is_file() else ""
    atomic_write_text(path, history + json.dumps(record) + "\n")
