"""Batch detection: ``dsfnet detect`` over many inputs, sharded across ranks, resumable, with a summary.

Inputs (:func:`expand_inputs`): video files, folders of frames, folders of videos (their video files and their
sub-folders of frames, in natural name order), text files listing one path or URL per line (``#`` comments;
relative paths are relative to the list file), or several of these. Each input gets an output sub-folder named
after it (``clip.mp4`` -> ``OUT/clip/``, a second ``clip`` -> ``OUT/clip-2/``) and, when it is done, a
``result.json`` there (frames, detections, seconds, or the error); ``OUT/summary.json`` and a printed table
gather them in input order.

Under ``torchrun`` the inputs are shared among the ranks, balanced by size on disk (frame counts are only known
after decoding). ``--resume`` skips the inputs whose ``result.json`` says done, after checking that the
checkpoint and the options are those of the interrupted run (:mod:`dsfnet.inference.manifest`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from dsfnet.atomic import atomic_write_text, remove_stale_temporaries
from dsfnet.engine.distributed import DistributedContext
from dsfnet.errors import DsfnetError, InputError
from dsfnet.inference.manifest import start_run, write_manifest
from dsfnet.inference.rank_progress import RankProgress
from dsfnet.inference.sharding import decided_by_main, my_share, run_my_share
from dsfnet.inference.video_io import IMAGE_EXTENSIONS, natural_key

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                    ".flv", ".wmv", ".3gp", ".ogv", ".y4m", ".h264", ".264", ".hevc")
LIST_EXTENSIONS = (".txt", ".lst", ".list")
RESULT = "result.json"
SUMMARY = "summary.json"
#: what an unreadable input raises (``video_io`` and the predictor name the input in the message); any other
#: exception is a bug and stops the batch with its traceback, whatever ``--skip-bad`` says
BAD_INPUT_ERRORS = (DsfnetError, OSError)


@dataclass(frozen=True)
class BatchInput:
    """One input of a batch: ``source`` as given (a path or a URL) and its output sub-folder ``name``."""

    source: str
    name: str


def is_url(text: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) is not None


def _has_frames(folder: Path) -> bool:
    return any(path.suffix.lower() in IMAGE_EXTENSIONS for path in folder.iterdir() if path.is_file())


def _folder_of_videos(folder: Path) -> list[str]:
    """The video files and the sub-folders of frames of ``folder`` (natural order), or [] if it has none."""
    entries = sorted(folder.iterdir(), key=lambda path: natural_key(path.name))
    return [str(path) for path in entries if not path.name.startswith(".") and (
        (path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS) or (path.is_dir() and _has_frames(path)))]


def _listed(list_file: Path) -> list[str]:
    sources = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            sources.append(line if is_url(line) or Path(line).is_absolute() else str(list_file.parent / line))
    if not sources:
        raise InputError(f"{list_file}: the list names no input")
    return sources


def expand_inputs(arguments: list[str]) -> tuple[list[BatchInput], bool]:
    """The inputs the command-line arguments name, and whether they make a batch (several inputs, a list file
    or a folder of videos) rather than one input written straight into ``--out``."""
    sources, batch = [], len(arguments) > 1
    for argument in arguments:
        path = Path(argument)
        if not is_url(argument) and path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            sources += _listed(path)
            batch = True
        elif not is_url(argument) and path.is_dir() and not _has_frames(path) and _folder_of_videos(path):
            sources += _folder_of_videos(path)
            batch = True
        else:
            sources.append(argument)
    return [BatchInput(source, name) for source, name in zip(sources, _unique_names(sources))], batch


def _unique_names(sources: list[str]) -> list[str]:
    names, used = [], set()
    for source in sources:
        stem = Path(source.rstrip("/")).stem if not is_url(source) else Path(source.split("?")[0].rstrip("/")).stem
        base = re.sub(r"[^\w.-]+", "_", stem).strip("._") or "input"
        name, copy = base, 1
        while name in used:
            copy += 1
            name = f"{base}-{copy}"
        used.add(name)
        names.append(name)
    return names


def input_size(source: str) -> int:
    """Bytes on disk of a video file or a folder of frames (0 for a URL or a missing path): the balance weight."""
    path = Path(source)
    if is_url(source) or not path.exists():
        return 0
    if path.is_dir():
        return sum(item.stat().st_size for item in path.iterdir() if item.is_file())
    return path.stat().st_size


#: ``detect(source, folder) -> (frames, detections)``: write one input's outputs into ``folder``
DetectOne = Callable[[str, Path], tuple[int, int]]


def run_batch(inputs: list[BatchInput], out: Path, detect: DetectOne, *, identity: Mapping[str, Any], resume: bool,
              skip_bad: bool, context: DistributedContext, progress: bool = True) -> Optional[dict]:
    """Detect every input not yet done on all ranks; rank 0 writes ``OUT/summary.json``, prints the table and
    returns the summary (other ranks ``None``). Without ``skip_bad`` an unreadable input stops the run with a
    ``ValueError`` (the finished inputs keep their outputs); with it the input is recorded as failed."""

    def prepare() -> list[int]:
        out.mkdir(parents=True, exist_ok=True)
        continuing = start_run(out, identity, resume)
        remove_stale_temporaries(out)  # of a killed run; each input's folder is cleared when its detection starts
        pending = [index for index, item in enumerate(inputs) if not (continuing and _done(out / item.name))]
        for index in pending:  # a failure or a previous run's record: the input is done again
            (out / inputs[index].name / RESULT).unlink(missing_ok=True)
        return pending

    pending = decided_by_main(prepare, context)
    sizes = [input_size(inputs[index].source) for index in pending]
    mine = my_share(pending, sizes, context)
    bar = RankProgress(context, len(mine), len(pending), enabled=progress, desc="inputs", unit="input",
                       finished=lambda: sum((out / inputs[index].name / RESULT).is_file() for index in pending))

    def work(index: int) -> None:
        _run_one(inputs[index], out, detect, skip_bad)
        bar.step()

    seconds, memory = run_my_share(mine, work, bar, context)
    if not context.is_main:
        return None
    summary = _summary(inputs, out, seconds, context.world_size, pending)
    # the settings every input was detected with (a resume is refused unless they are the same)
    summary["settings"] = {key: value for key, value in identity.items() if key != "inputs"}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1) + "\n")
    write_manifest(out, identity, finished=True)
    print(format_summary(summary), end="")
    print(memory)
    return summary


def _done(folder: Path) -> bool:
    return _read_result(folder).get("status") == "ok"


def _read_result(folder: Path) -> dict:
    path = folder / RESULT
    return json.loads(path.read_text()) if path.is_file() else {}


def _run_one(item: BatchInput, out: Path, detect: DetectOne, skip_bad: bool) -> None:
    folder = out / item.name
    started = time.perf_counter()
    try:
        frames, detections = detect(item.source, folder)
    except BAD_INPUT_ERRORS as error:
        if not skip_bad:
            named = str(error) if item.source in str(error) else f"{item.source}: {error}"
            raise InputError(f"{named}; the finished inputs keep their outputs in {out} (--skip-bad goes on past "
                             "unreadable inputs, --resume skips the finished ones)") from None
        record = {"status": "failed", "error": str(error)}
    else:
        record = {"status": "ok", "frames": frames, "detections": detections}
    record = {"input": item.source, "name": item.name, **record, "seconds": round(time.perf_counter() - started, 3)}
    atomic_write_text(folder / RESULT, json.dumps(record, indent=1) + "\n")


def _summary(inputs: list[BatchInput], out: Path, seconds: float, world_size: int, pending: list[int]) -> dict:
    """``summary.json``: every input's record in input order and the totals (frames/s: of this run's inputs)."""
    records = [_read_result(out / item.name) or {"input": item.source, "name": item.name, "status": "missing"}
               for item in inputs]
    ok = [record for record in records if record["status"] == "ok"]
    this_run = sum(records[index]["frames"] for index in pending if records[index]["status"] == "ok")
    return {"inputs": records,
            "totals": {"inputs": len(records), "ok": len(ok), "failed": len(records) - len(ok),
                       "frames": sum(record["frames"] for record in ok),
                       "detections": sum(record["detections"] for record in ok),
                       "done_before_resume": len(inputs) - len(pending), "world_size": world_size,
                       "seconds": round(seconds, 3), "frames_per_second": round(this_run / max(seconds, 1e-9), 3)}}


def format_summary(summary: dict) -> str:
    """The printed table: one row per input (frames, detections, seconds, status), then the totals line."""
    records, totals = summary["inputs"], summary["totals"]
    width = max([len("input")] + [len(record["name"]) for record in records])
    lines = [f"{'input':<{width}}  {'frames':>7}  {'detections':>10}  {'seconds':>8}  status"]
    for record in records:
        ok = record["status"] == "ok"
        status = "ok" if ok else f"{record['status']}: {record.get('error', '')}".rstrip(": ")
        lines.append(f"{record['name']:<{width}}  {record['frames'] if ok else '-':>7}  "
                     f"{record['detections'] if ok else '-':>10}  {record.get('seconds', 0):>8.1f}  {status}")
    lines.append(f"{totals['ok']} of {totals['inputs']} inputs done ({totals['failed']} failed), {totals['frames']} "
                 f"frames, {totals['detections']} detections in {totals['seconds']:.1f} s on {totals['world_size']} "
                 f"rank(s): {totals['frames_per_second']:.2f} frames/s overall")
    return "\n".join(lines) + "\n"
