"""``--input-option`` that FFmpeg will not use is named in a warning (issue 26, case 11), and an empty standard
input is refused in one line saying so (issue 26, extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsfnet.inference.ffmpeg_options import unknown_options
from inferencehelpers import REPO, decode_all, write_video

ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def dsfnet_detect(source: str, checkpoint: Path, out: Path, *extra: str, **stdin) -> subprocess.CompletedProcess:
    """``dsfnet detect`` in a process of its own; ``stdin`` is ``stdin=FILE`` or ``input=TEXT``."""
    return subprocess.run([sys.executable, "-m", "dsfnet", "detect", source, "--weights", str(checkpoint), "--out",
                           str(out), "--sampling", "causal", "--n", "3", "--no-progress", *extra],
                          capture_output=True, text=True, timeout=120, env=ENV, **stdin)


def test_ffmpeg_is_asked_which_option_names_it_has():
    # an input-format option, a protocol option, a decoder option, a typo and an option FFmpeg 5 removed
    assert unknown_options(["probesize", "rtsp_transport", "threads", "bogus_opt", "stimeout"]) == [
        "bogus_opt", "stimeout"]


def test_a_mistyped_input_option_is_named_and_the_stream_still_read(checkpoint, tmp_path):
    video = write_video(tmp_path / "clip.mkv", 10)
    out = tmp_path / "out"
    with open(video, "rb") as stdin:
        done = dsfnet_detect("-", checkpoint, out, "--input-option", "bogus_opt=1", "--input-option",
                             "probesize=100000", stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ("dsfnet detect: warning: --input-option bogus_opt: not used, FFmpeg has no option "
                                   "of that name (see ffmpeg -h full)")
    lines = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert [line["frame_index"] for line in lines] == list(range(10))
    assert decode_all(out / "annotated.mp4") == (10, 64, 48)


def test_input_options_for_a_file_are_named_as_unused(cli, checkpoint, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", 4)
    code = cli(["detect", str(video), "--weights", str(checkpoint), "--out", str(tmp_path / "out"), "--n", "3",
                "--no-progress", "--no-video", "--input-option", "rtsp_transport=tcp"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert code == 0 and warnings == ["dsfnet detect: warning: --input-option rtsp_transport: not used, the options "
                                      "apply to live streams (a URL, a camera, -) and no input is one"]


@pytest.mark.parametrize("kind", ["closed pipe", "/dev/null", "empty file"])
def test_an_empty_standard_input_is_one_line(checkpoint, tmp_path, kind):
    out = tmp_path / "out"
    if kind == "closed pipe":
        done = dsfnet_detect("-", checkpoint, out, input="")
    else:
        path = Path(os.devnull) if kind == "/dev/null" else tmp_path / "empty.mkv"
        if kind == "empty file":
            path.write_bytes(b"")
        with open(path, "rb") as stdin:
            done = dsfnet_detect("-", checkpoint, out, stdin=stdin)
    assert done.returncode == 2
    assert done.stderr.strip() == ("dsfnet detect: error: -: the stream on standard input is empty (nothing was "
                                   "piped in)")
    assert not out.exists()
