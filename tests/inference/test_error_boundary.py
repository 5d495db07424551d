"""The CLI's error boundary: a bug (here a failure injected inside the model) shows its traceback and exits 1;
input errors stay one line with exit 2 (``-v`` adds their traceback); batch detection stops on a bug even with
``--skip-bad``, and skips only unreadable inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from faulthelpers import one_line_error
from inferencehelpers import write_video

REPO = Path(__file__).resolve().parents[2]
INJECTED = "mat1 and mat2 shapes cannot be multiplied (injected)"

# Runs ``python -m dsfnet ARGS`` with every nn.Linear broken, as a shape bug in the RoI head would be.
_WITH_A_BUG = f"""
import runpy, sys, torch

def broken(self, x):
    raise RuntimeError({INJECTED!r})

if sys.argv[1] == "bug":
    torch.nn.Linear.forward = broken
sys.argv = ["dsfnet", *sys.argv[2:]]
runpy.run_module("dsfnet", run_name="__main__")
"""


def _dsfnet(tmp_path: Path, bug: bool, *argv: str) -> subprocess.CompletedProcess:
    """``dsfnet ARGV`` in a fresh interpreter (its real exit status and stderr), optionally with the bug."""
    script = tmp_path / "with_a_bug.py"
    script.write_text(_WITH_A_BUG)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), "bug" if bug else "none", *argv], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "clip.mp4", 4, 64, 48)


def test_a_bug_inside_the_model_shows_its_traceback_and_exits_1(checkpoint, video, tmp_path):
    done = _dsfnet(tmp_path, True, "detect", str(video), "--weights", str(checkpoint), "--out",
                   str(tmp_path / "out"), "--no-progress", "--n", "2")
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr and f"RuntimeError: {INJECTED}" in done.stderr
    assert "dsfnet detect: internal error" in done.stderr and "please report it" in done.stderr
    assert not (tmp_path / "out" / "detections.jsonl").exists()


def test_an_input_error_is_one_line_and_exit_2_in_a_real_process(checkpoint, tmp_path):
    done = _dsfnet(tmp_path, False, "detect", str(tmp_path / "missing.mp4"), "--weights", str(checkpoint),
                   "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [f"dsfnet detect: error: input not found: {tmp_path / 'missing.mp4'}"]
    verbose = _dsfnet(tmp_path, False, "-v", "detect", str(tmp_path / "missing.mp4"), "--weights", str(checkpoint),
                      "--out", str(tmp_path / "out"))
    assert verbose.returncode == 2 and "Traceback (most recent call last)" in verbose.stderr
    assert "InputNotFound: input not found" in verbose.stderr


@pytest.mark.parametrize("make_argv, needle", [
    (lambda d, v, c: [str(d / "missing.mp4"), "--weights", str(c)], "input not found"),
    (lambda d, v, c: [str(v), "--weights", str(d / "missing.pt")], "checkpoint not found"),
    (lambda d, v, c: [str(v), "--weights", str(d)], "is a folder"),
    (lambda d, v, c: [str(v), "--weights", str(c), "--score-thr", "2"], "--score-thr must be in [0, 1]"),
    (lambda d, v, c: [str(v), "--weights", str(c), "--classes", "unicorn"], "unknown class name"),
    # --n 0 is refused when the command line is parsed (tests/inference/test_option_refusals.py)
])
def test_documented_input_errors_stay_one_line(cli, checkpoint, video, tmp_path, capsys, make_argv, needle):
    code = cli(["detect", *make_argv(tmp_path, video, checkpoint), "--out", str(tmp_path / "out"), "--no-progress"])
    one_line_error(capsys, code, "detect", needle)


def test_a_bug_stops_a_batch_even_with_skip_bad(cli, checkpoint, tmp_path, capsys, monkeypatch):
    first, second = (write_video(tmp_path / f"clip{i}.mp4", 3, 64, 48) for i in (1, 2))
    calls = []

    def broken(self, x):
        calls.append(1)
        raise RuntimeError(INJECTED)

    monkeypatch.setattr(torch.nn.Linear, "forward", broken)
    out = tmp_path / "batch"
    code = cli(["detect", str(first), str(second), "--weights", str(checkpoint), "--out", str(out),
                "--skip-bad", "--no-progress", "--n", "2"])
    err = capsys.readouterr().err
    assert code == 1 and f"RuntimeError: {INJECTED}" in err and "Traceback" in err
    assert len(calls) == 1  # stopped at the first input's first forward pass, the second never started
    assert not (out / "clip1" / "result.json").exists() and not (out / "clip2").exists()


def test_skip_bad_still_skips_an_unreadable_input(cli, checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    good = write_video(tmp_path / "good.mp4", 3, 64, 48)
    out = tmp_path / "batch"
    code = cli(["detect", str(bad), str(good), "--weights", str(checkpoint), "--out", str(out), "--skip-bad",
                "--no-progress", "--n", "2"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "bad" / "result.json").read_text())["status"] == "failed"
    assert json.loads((out / "good" / "result.json").read_text())["status"] == "ok"
