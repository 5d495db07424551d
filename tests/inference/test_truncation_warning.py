"""The "probably truncated" warning fires for a file whose stream ends before its container says, and not for a
complete variable-frame-rate file, whose frame count at the announced rate (duration x rate) is only an estimate
(issue 26, case 12)."""

from __future__ import annotations

import json
import re
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dsfnet.inference.video_io import VideoFileSource
from inferencehelpers import moving_square, write_video

FRAMES, SECONDS = 60, 25.5  # 60 frames over about 26 s, at irregular times; the stream's nominal rate is 15


def write_vfr_video(path: Path) -> Path:
    """``FRAMES`` frames at random times over ``SECONDS`` (millisecond timestamps), nominal rate 15 frames/s."""
    gaps = np.random.default_rng(0).uniform(0.05, 0.8, FRAMES - 1)
    times = np.concatenate([[0.0], np.cumsum(gaps / gaps.sum() * SECONDS)])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, time in enumerate(times):
            frame = av.VideoFrame.from_ndarray(moving_square(index, 64, 48), format="rgb24")
            frame.pts, frame.time_base = int(round(time * 1000)), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def counted(path: Path) -> tuple[int, list[str]]:
    """The frames :class:`VideoFileSource` counts in ``path`` and the warnings it gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        count = VideoFileSource(path).count()
    return count, [str(warning.message) for warning in caught]


@pytest.mark.parametrize("suffix", [".mkv", ".ts", ".avi"])
def test_a_complete_variable_frame_rate_file_does_not_warn(tmp_path, suffix):
    # Matroska / MPEG-TS announce only a duration; AVI counts 1 ms ticks as frames
    assert counted(write_vfr_video(tmp_path / f"vfr{suffix}")) == (FRAMES, [])


@pytest.mark.parametrize("suffix, announced", [(".mkv", r"25\.\d\d s"), (".avi", rf"{FRAMES} frames \(4\.00 s\)")])
def test_a_cut_file_warns_naming_it(tmp_path, suffix, announced):
    # the variable-rate Matroska announces its duration; a constant-rate AVI counts its frames in its header
    full = (write_vfr_video(tmp_path / "full.mkv") if suffix == ".mkv"
            else write_video(tmp_path / "full.avi", FRAMES, fps=15, noise=True))
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    count, messages = counted(cut)
    assert 0 < count < FRAMES and len(messages) == 1, messages
    assert re.fullmatch(rf"{re.escape(str(cut))}: the stream ended at frame {count} \(\d+\.\d\d s\) but the "
                        rf"container announces {announced}; the file is probably truncated \(using the {count} "
                        r"decoded frames\)", messages[0]), messages[0]


def test_detect_on_a_complete_variable_frame_rate_file_has_no_truncation_warning(cli, checkpoint, tmp_path, capsys):
    video = write_vfr_video(tmp_path / "vfr.mkv")
    out = tmp_path / "out"
    code = cli(["detect", str(video), "--weights", str(checkpoint), "--out", str(out), "--n", "3", "--no-progress",
                "--no-video"])
    err = capsys.readouterr().err
    assert code == 0 and "truncated" not in err and "warning" not in err, err
    lines = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert [line["frame_index"] for line in lines] == list(range(FRAMES))
