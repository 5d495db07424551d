"""What a resumable inference run is: ``<out>/run.json``, written when the run starts, checked by ``--resume``.

The manifest holds the run's *identity*, a flat ``{key: value}`` dict of everything that changes its outputs:
the checkpoint's SHA-256, the inference options (``test.*``), the data settings and the list of inputs. A resumed
run must have the same identity, or the finished part and the rest would not belong together; the refusal names
the first key that differs. ``run.json`` also records whether the run finished, so that a new run into the folder
of an *unfinished* one is refused unless it resumes (its finished part would be thrown away by mistake).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from dsfnet.atomic import atomic_write_text
from dsfnet.errors import InputError, InputNotFound, OutputExists

MANIFEST = "run.json"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes (a checkpoint is identified by its content, not its path or date)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def first_difference(before: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """``"key (before != now)"`` for the first key (sorted) whose value differs, or ``None``."""
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            return f"{key} ({_short(before.get(key))} != {_short(now.get(key))})"
    return None


def read_manifest(out_dir: Path) -> dict | None:
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not a run manifest ({error.msg}); remove the folder or choose another --out")


def start_run(out_dir: Path, identity: Mapping[str, Any], resume: bool) -> bool:
    """Check ``out_dir`` for a run of ``identity`` and record it; returns True when continuing a run.

    - ``resume``: ``out_dir`` must hold the manifest of a run with the same identity (else ``ValueError`` naming
      the first difference, or ``FileNotFoundError`` when there is no run to resume).
    - not ``resume``: an unfinished run in ``out_dir`` is refused (``FileExistsError``); a finished one is replaced.
    """
    identity = json.loads(json.dumps(dict(identity)))  # the JSON form, as a manifest read back holds it
    previous = read_manifest(out_dir)
    if resume:
        if previous is None:
            raise InputNotFound(f"--resume: {out_dir / MANIFEST} not found (no run to resume in {out_dir})")
        difference = first_difference(previous["identity"], identity)
        if difference is not None:
            raise InputError(f"--resume: {out_dir} holds a run with another {difference} (interrupted run != now); "
                             "resume with the same checkpoint, config and options, or choose another --out")
        write_manifest(out_dir, identity, finished=False)
        return True
    if previous is not None and not previous.get("finished", False):
        raise OutputExists(f"{out_dir} holds an unfinished run: continue it with --resume, or remove the folder "
                              "or choose another --out")
    write_manifest(out_dir, identity, finished=False)
    return False


def write_manifest(out_dir: Path, identity: Mapping[str, Any], finished: bool) -> None:
    atomic_write_text(out_dir / MANIFEST, json.dumps({"identity": dict(identity), "finished": finished},
                                                     indent=1, sort_keys=True) + "\n")
