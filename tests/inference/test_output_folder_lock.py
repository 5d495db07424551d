"""``dsfnet detect`` and ``dsfnet eval`` lock their output folder as ``train`` does: a second run into a folder that a
running process holds is refused in one line (exit 2) without touching it, and a killed holder (SIGKILL) leaves
nothing that blocks the next run (issue 26, extra)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.engine.run_dir import lock_name
from inferencehelpers import REPO, write_video

ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def wait_for_lock(process: subprocess.Popen, lock: Path, timeout: float = 60) -> None:
    """Until ``process`` has written its pid into ``lock``."""
    deadline = time.monotonic() + timeout
    while not (lock.is_file() and f"pid {process.pid}" in lock.read_text()):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def one_line_refusal(code: int, err: str, command: str, out: Path, holder: subprocess.Popen) -> None:
    err = err.strip()
    assert code == 2 and "\n" not in err, err
    assert err == (f"dsfnet {command}: error: run folder {out} is in use by another dsfnet {command} (pid "
                   f"{holder.pid} on {socket.gethostname()}); wait for it to end, or choose another --out")


def test_detect_into_a_folder_a_running_detect_holds_is_refused(cli, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier file")
    # a live detect waiting for its first byte on standard input holds the folder
    holder = subprocess.Popen([sys.executable, "-m", "dsfnet", "detect", "-", "--weights", str(checkpoint), "--out",
                               str(out), "--sampling", "causal", "--timeout", "120", "--no-progress"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        wait_for_lock(holder, out / lock_name("detect"))
        before = snapshot(out)
        video = write_video(tmp_path / "clip.mp4", 4)
        args = ["detect", str(video), "--weights", str(checkpoint), "--out", str(out), "--n", "3", "--no-progress"]
        code = cli(args)
        one_line_refusal(code, capsys.readouterr().err, "detect", out, holder)
        assert snapshot(out) == before
    finally:
        kill(holder)
    assert (out / lock_name("detect")).exists()  # SIGKILL: the file stays, the kernel dropped the lock
    assert cli(args) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["annotated.mp4", "detections.jsonl", "keep.txt"]


@pytest.fixture(scope="module")
def vid_root(tmp_path_factory):
    return generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "ILSVRC2015", num_videos=1, seed=0,
                                  num_val_videos=1, num_frames=3, num_det_images=0, size=(64, 64))


def test_eval_into_a_folder_another_process_holds_is_refused(cli, tmp_path, vid_root, capsys):
    out = tmp_path / "eval"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from dsfnet.engine.run_dir import locked_run_dir\n"
                               "with locked_run_dir(Path(sys.argv[1]), command='eval'): time.sleep(120)", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    detections = tmp_path / "empty.jsonl"
    detections.write_text("")
    args = ["eval", "--detections", str(detections), "--data", str(vid_root), "--out", str(out)]
    try:
        wait_for_lock(holder, out / lock_name("eval"))
        code = cli(args)
        one_line_refusal(code, capsys.readouterr().err, "eval", out, holder)
        assert [p.name for p in out.iterdir()] == [lock_name("eval")]  # no report written
    finally:
        kill(holder)
    assert cli(args) == 0, capsys.readouterr().err
    assert (out / "report.json").is_file() and not (out / lock_name("eval")).exists()
