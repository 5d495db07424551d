"""Issue 26, cases 6-8: ``dsfnet detect`` stopped by real signals and killed in real processes, and a live stream
into a full disk (a real file size limit: ``RLIMIT_FSIZE``, so that writes fail with EFBIG as on a full disk).

- SIGTERM stops as Ctrl-C does: one line, exit 143; a file's partial outputs are removed (the earlier ones stay);
  a live stream's two outputs are closed holding the same frames.
- The temporary files of a SIGKILLed run (one process, or a 2-rank ``torchrun`` batch) are removed when the next
  run (or ``--resume``) starts in ``--out``.
- A live stream whose outputs hit the size limit ends with one line; ``annotated.mp4`` decodes to its end and
  holds the frames of ``detections.jsonl``, whichever file filled up first.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import av
import pytest

from faulthelpers import snapshot
from inferencehelpers import decode_all, mpegts_frames, write_video
from launch import command, environment, run, run_and_kill
from test_live import detect_args as live_args
from test_live import read_lines

TERM, INT = signal.SIGTERM, signal.SIGINT


def file_args(inputs, checkpoint, out, *more: str) -> list[str]:
    return ["detect", *map(str, inputs), "--weights", str(checkpoint), "--out", str(out), "--score-thr",
            "0.05", "--no-progress", *more]


def temporaries(folder: Path) -> list[Path]:
    """The temporary files of atomic writes anywhere under ``folder``."""
    return sorted(path for path in folder.rglob(".*.tmp*") if path.is_file()) if folder.is_dir() else []


class Detect:
    """``python -m dsfnet ARGS`` in a real process, its output in files (no pipe to fill up); ``stdin``: a pipe
    into which :meth:`feed` sends a live MPEG-TS stream from a thread until the process is gone."""

    def __init__(self, args: list[str], folder: Path, stdin: bool = False):
        self.out, self.err = folder / "stdout.txt", folder / "stderr.txt"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(command(args, 0), env=environment(), stdout=out, stderr=err,
                                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self._feeder: threading.Thread | None = None

    def feed(self, pace: float = 0.0, noise: bool = False) -> None:
        def send() -> None:
            try:
                for _ in mpegts_frames(self.process.stdin, pace=pace, noise=noise):
                    pass  # until the process closes its end of the pipe
            except (OSError, ValueError, av.FFmpegError):
                pass

        self._feeder = threading.Thread(target=send, daemon=True)
        self._feeder.start()

    def wait_until(self, ready: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.02)

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Exit status, standard output and standard error, once the process has ended."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        if self._feeder is not None:
            self._feeder.join(timeout=10)
        return code, self.out.read_text(), self.err.read_text()


def only_line(err: str) -> str:
    """The one ``dsfnet detect:`` line of standard error (no traceback)."""
    lines = [line for line in err.splitlines() if line.startswith("dsfnet detect:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def jsonl_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.is_file() else 0


def assert_in_step(out: Path) -> int:
    """``detections.jsonl`` holds whole lines of frames 0, 1, ... and ``annotated.mp4`` decodes to its end (PyAV
    raises at a cut fragment) with as many frames; returns that number."""
    lines = read_lines(out / "detections.jsonl")
    assert [line["frame_index"] for line in lines] == list(range(len(lines)))
    assert decode_all(out / "annotated.mp4")[0] == len(lines)
    return len(lines)


# ---------------------------------------------------------------------------------------------- case 6: files
@pytest.mark.parametrize("signum, code, message", [(TERM, 143, "stopped by SIGTERM"), (INT, 130, "interrupted")])
def test_a_signal_stops_a_file_and_keeps_the_earlier_outputs(checkpoint, tmp_path, signum, code, message):
    """SIGTERM takes Ctrl-C's path: one line, and the partial outputs (``.detections.jsonl.*.tmp``,
    ``.annotated.mp4.*.tmp.mp4``) removed; the earlier run's outputs stay as they were. The video is long: the
    detections file first gets bytes when its 8 KB buffer fills, and the signal must still find frames to stop
    (with 300 frames, a loaded machine once saw the run finish first: exit 0)."""
    video = write_video(tmp_path / "clip.mp4", 3000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "detections.jsonl").write_text('{"video": "old.mp4", "frame_index": 0, "detections": []}\n')
    (out / "annotated.mp4").write_bytes(b"an earlier video")
    before = snapshot(out)
    detect = Detect(file_args([video], checkpoint, out), tmp_path)
    detect.wait_until(lambda: any(path.stat().st_size for path in out.glob(".detections.jsonl.*.tmp")))
    detect.process.send_signal(signum)
    exit_code, _, err = detect.finish()
    assert exit_code == code and only_line(err) == f"dsfnet detect: {message}", err
    assert snapshot(out) == before


def test_the_next_run_removes_the_temporaries_of_a_killed_one(checkpoint, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 300)
    out = tmp_path / "out"
    args = file_args([video], checkpoint, out)
    assert run_and_kill(args, 0, ready=lambda: len(temporaries(out)) == 2) == -signal.SIGKILL
    stale = [path.name for path in temporaries(out)]
    assert stale[0].startswith(".annotated.mp4.") and stale[1].startswith(".detections.jsonl."), stale
    done = run(args)
    assert done.returncode == 0, done.stderr
    assert "removed 2 stale temporary file(s)" in done.stderr
    assert sorted(path.name for path in out.iterdir()) == ["annotated.mp4", "detections.jsonl"]
    assert jsonl_lines(out / "detections.jsonl") == 300


def test_resume_removes_the_temporaries_of_a_killed_two_rank_batch(checkpoint, tmp_path):
    """torchrun with 2 ranks, SIGKILLed (launcher and ranks) while both write; ``--resume`` in one process."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a", "b"):
        write_video(folder / f"{name}.mp4", 120)
    out = tmp_path / "out"
    args = file_args([folder], checkpoint, out)
    assert run_and_kill(args, 2, ready=lambda: len(temporaries(out)) >= 2) == -signal.SIGKILL
    (out / ".summary.json.k3j9x0ab.tmp").write_text("{")  # as a kill while summary.json is written leaves it
    stale = temporaries(out)
    assert len(stale) >= 3
    done = run(args + ["--resume"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert temporaries(out) == []
    assert json.loads((out / "summary.json").read_text())["totals"]["ok"] == 2
    for name in ("a", "b"):
        assert jsonl_lines(out / name / "detections.jsonl") == 120
        assert decode_all(out / name / "annotated.mp4")[0] == 120


# ---------------------------------------------------------------------------------------------- case 7: live
@pytest.mark.parametrize("signum, reason", [(TERM, "stopped by SIGTERM"), (INT, "interrupted")])
def test_a_signal_ends_a_live_stream_on_stdin_with_both_outputs_at_the_same_frame(checkpoint, tmp_path, signum,
                                                                                   reason):
    out = tmp_path / "out"
    detect = Detect(live_args("-", checkpoint, out), tmp_path, stdin=True)
    detect.feed(pace=0.02)
    detect.wait_until(lambda: jsonl_lines(out / "detections.jsonl") >= 6)
    detect.process.send_signal(signum)
    exit_code, stdout, err = detect.finish()
    frames = assert_in_step(out)
    assert exit_code == 128 + signum, err
    assert only_line(err) == (f"dsfnet detect: {reason}: stopped reading - after {frames} frames; both outputs "
                              "are closed")
    assert f"{frames} frames" in stdout


# ---------------------------------------------------------------------------------------------- case 8: full disk
@pytest.mark.parametrize("full, noise, threshold", [
    ("annotated.mp4", True, "0.99"),     # random pixels: big fragments, lines without detections
    ("detections.jsonl", False, "0.0"),  # a smooth picture: small fragments, long lines
])
def test_a_live_stream_into_a_full_disk_keeps_both_outputs_whole_and_in_step(checkpoint, tmp_path, full, noise,
                                                                              threshold):
    out = tmp_path / "out"
    limit = 48 * 1024
    detect = Detect(live_args("-", checkpoint, out, "--score-thr", threshold), tmp_path, stdin=True)
    # a file size limit on the process: a write past it fails with EFBIG, as one fails with ENOSPC on a full disk
    resource.prlimit(detect.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    detect.feed(noise=noise)
    exit_code, _, err = detect.finish(timeout=120)
    assert exit_code == 2
    assert only_line(err) == (f"dsfnet detect: error: file size limit reached (the file system's, or ulimit -f) "
                              f"while writing {out / full}")
    assert (out / full).stat().st_size > limit * 0.8  # it did fill up
    assert assert_in_step(out) >= 2
