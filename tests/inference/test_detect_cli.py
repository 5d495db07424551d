"""``dsfnet detect`` end to end, video I/O edge cases and bad input (issue 6, acceptance 4-5)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsfnet.inference.video_io import VideoFileSource, VideoWriter, open_source
from inferencehelpers import decode_all, moving_square, write_video


def outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_detect_writes_jsonl_and_playable_video(cli, checkpoint, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", 12, 64, 48)
    out = tmp_path / "out"
    code = cli(["detect", str(video), "--weights", str(checkpoint), "--out", str(out), "--score-thr", "0.05",
                "--n", "3", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert outputs(out) == ["annotated.mp4", "detections.jsonl"]
    lines = read_lines(out / "detections.jsonl")
    assert [line["frame_index"] for line in lines] == list(range(12))
    assert {line["video"] for line in lines} == {"clip.mp4"}
    detections = [d for line in lines for d in line["detections"]]
    assert detections, "the randomised tiny model should score some boxes above 0.05"
    for det in detections:
        assert set(det) == {"box", "label", "class", "score"} and det["score"] >= 0.05
        x1, y1, x2, y2 = det["box"]
        assert -1 <= x1 <= x2 <= 65 and -1 <= y1 <= y2 <= 49  # original 64x48 pixels
    assert decode_all(out / "annotated.mp4") == (12, 64, 48)
    assert "frames/s" in capsys.readouterr().out


def test_gray_odd_sized_video_and_classes_filter(cli, checkpoint, tmp_path, capsys):
    """A single-channel 97x61 video: converted to RGB for the model; the H.264 output is padded to 98x62."""
    video = write_video(tmp_path / "gray.mkv", 6, 97, 61, codec="rawvideo", pix_fmt="gray")
    source = open_source(video)
    frames = list(source.frames())
    assert source.count() == 6 and frames[0].shape == (61, 97, 3)
    assert np.array_equal(frames[0][..., 0], frames[0][..., 2])
    out = tmp_path / "out"
    code = cli(["detect", str(video), "--weights", str(checkpoint), "--out", str(out), "--score-thr", "0",
                "--classes", "car,dog", "--mode", "exact", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    lines = read_lines(out / "detections.jsonl")
    assert len(lines) == 6
    assert {d["class"] for line in lines for d in line["detections"]} <= {"car", "dog"}
    assert decode_all(out / "annotated.mp4") == (6, 98, 62)


def test_folder_of_frames_no_video(cli, checkpoint, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(moving_square(i, 50, 40)).save(folder / f"{i}.jpg")
    out = tmp_path / "out"
    code = cli(["detect", str(folder), "--weights", str(checkpoint), "--out", str(out), "--no-video",
                "--sampling", "stride", "--stride", "2", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert outputs(out) == ["detections.jsonl"]
    assert [line["frame_index"] for line in read_lines(out / "detections.jsonl")] == list(range(5))


def test_unknown_class_lists_valid_ones(cli, checkpoint, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", 3)
    code = cli(["detect", str(video), "--weights", str(checkpoint), "--out", str(tmp_path / "out"),
                "--classes", "car,unicorn"])
    err = capsys.readouterr().err
    assert code != 0 and "'unicorn'" in err and "airplane" in err and "zebra" in err
    assert outputs(tmp_path / "out") == []


@pytest.mark.parametrize("kind", ["missing", "not_a_video", "empty_file", "zero_frames", "empty_folder"])
def test_bad_input_fails_cleanly(cli, checkpoint, tmp_path, capsys, kind):
    if kind == "missing":
        path = tmp_path / "nope.mp4"
        expected = "not found"
    elif kind == "not_a_video":
        path = tmp_path / "notes.mp4"
        path.write_text("this is not a video\n" * 50)
        expected = "not a video"
    elif kind == "empty_file":
        path = tmp_path / "empty.mkv"
        path.write_bytes(b"")
        expected = "not a video"
    elif kind == "zero_frames":
        path = write_video(tmp_path / "zero.avi", 0, codec="mpeg4")
        expected = "no decodable frame"
    else:
        path = tmp_path / "frames"
        path.mkdir()
        expected = "no image frames"
    out = tmp_path / "out"
    code = cli(["detect", str(path), "--weights", str(checkpoint), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert str(path) in err and expected in err, err
    assert "Traceback" not in err
    assert outputs(out) == []


def test_missing_checkpoint(cli, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", 3)
    code = cli(["detect", str(video), "--weights", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and "none.pt" in err


def test_failure_midway_leaves_no_partial_output(cli, checkpoint, tmp_path, capsys, monkeypatch):
    from dsfnet.models.detector import DSFNet

    video = write_video(tmp_path / "clip.mp4", 10)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("unrelated")
    calls = {"n": 0}
    original = DSFNet.detect_cached

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("simulated failure at frame 5")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DSFNet, "detect_cached", failing)
    code = cli(["detect", str(video), "--weights", str(checkpoint), "--out", str(out), "--no-progress"])
    assert code != 0 and "simulated failure" in capsys.readouterr().err
    assert outputs(out) == ["keep.txt"]  # no detections.jsonl / annotated.mp4, no temporary files


def test_truncated_video_warns_with_frame_index_and_keeps_going(cli, checkpoint, tmp_path, capsys):
    # Matroska has no frame count; its header announces the duration, the cut stream ends early
    full = write_video(tmp_path / "full.mkv", 40, 64, 48)
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=r"cut.mkv: the stream ended at frame \d+ .* announces 1.60 s;"):
        count = VideoFileSource(cut).count()
    assert 0 < count < 40
    out = tmp_path / "out"
    code = cli(["detect", str(cut), "--weights", str(checkpoint), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"cut.mkv: the stream ended at frame {count}" in captured.err
    assert len(read_lines(out / "detections.jsonl")) == count
    assert decode_all(out / "annotated.mp4")[0] == count


def test_corrupt_packets_are_skipped_with_a_warning(tmp_path):
    # an MP4 with its index first ('faststart'), cut in the middle: packets past the cut are damaged
    full = write_video(tmp_path / "full.mp4", 30, 64, 48, options={"movflags": "faststart"}, noise=True)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = VideoFileSource(cut)
        count = source.count()
    messages = [str(w.message) for w in caught]
    assert 0 < count < 30
    assert any("cut.mp4" in m and f"frame {count}" in m for m in messages), messages
    assert len(list(source.frames())) == count  # the second pass yields the same frames


def test_truncated_mp4_without_index_is_not_a_video(tmp_path):
    full = write_video(tmp_path / "full.mp4", 10, noise=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # the index ('moov') is at the end
    with pytest.raises(ValueError, match="cut.mp4"):
        VideoFileSource(cut)


def test_writer_is_atomic_and_pads_odd_sizes(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, fps=10) as writer:
            writer.write(moving_square(0, 33, 21))
            raise RuntimeError("stop")
    assert outputs(tmp_path) == []
    with VideoWriter(path, fps=10) as writer:
        for i in range(4):
            writer.write(moving_square(i, 33, 21))
    assert decode_all(path) == (4, 34, 22)
    assert outputs(tmp_path) == ["v.mp4"]
