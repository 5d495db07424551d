"""Batch ``dsfnet detect`` (issue 15, acceptance 3): many inputs, one sub-folder each, summary, --skip-bad, resume."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from dsfnet.inference.batch import BatchInput, expand_inputs
from inferencehelpers import decode_all, moving_square, write_video
from launch import run

FRAMES = {"a": 7, "b": 5, "d": 6}


@pytest.fixture
def folder(tmp_path):
    """Good videos a.mp4, b.mkv, d.mp4 and a corrupt c_bad.mp4 (third in name order)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.mp4", FRAMES["a"])
    write_video(videos / "b.mkv", FRAMES["b"], codec="mpeg4")
    (videos / "c_bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 300)
    write_video(videos / "d.mp4", FRAMES["d"])
    (videos / "notes.md").write_text("not an input\n")
    return videos


def detect_args(inputs, checkpoint, out, *more: str) -> list[str]:
    return ["detect", *map(str, inputs), "--weights", str(checkpoint), "--out", str(out), "--score-thr", "0.05",
            "--no-progress", *more]


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_complete(out, name: str, video: bool = True) -> None:
    assert [line["frame_index"] for line in lines(out / name / "detections.jsonl")] == list(range(FRAMES[name]))
    if video:
        assert decode_all(out / name / "annotated.mp4")[0] == FRAMES[name]
    result = json.loads((out / name / "result.json").read_text())
    assert result["status"] == "ok" and result["frames"] == FRAMES[name]


def test_expand_inputs(tmp_path, folder):
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(moving_square(0, 40, 30)).save(frames / "0.jpg")
    listing = tmp_path / "inputs.txt"
    listing.write_text("# two clips of the same name, a frame folder and a stream\nvideos/a.mp4\n\n"
                       f"{folder / 'a.mp4'}\nframes\nrtsp://camera.local/live/stream1?x=1\n")
    items, batch = expand_inputs([str(listing)])
    assert batch and items == [BatchInput(str(tmp_path / "videos" / "a.mp4"), "a"),
                               BatchInput(str(folder / "a.mp4"), "a-2"), BatchInput(str(frames), "frames"),
                               BatchInput("rtsp://camera.local/live/stream1?x=1", "stream1")]
    assert expand_inputs([str(frames)]) == ([BatchInput(str(frames), "frames")], False)  # a folder of frames
    items, batch = expand_inputs([str(folder)])  # a folder of videos: the video files, not notes.md
    assert batch and [item.name for item in items] == ["a", "b", "c_bad", "d"]
    assert expand_inputs([str(folder / "a.mp4"), str(frames)])[1]  # several arguments make a batch


def test_entries_that_only_look_like_videos_are_recorded_as_skipped(cli, checkpoint, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.mp4", FRAMES["a"])
    (videos / "fake.mp4").mkdir()  # a folder without frames
    (videos / "gone.mkv").symlink_to(videos / "missing.mkv")
    (videos / "loop.mp4").symlink_to(videos / "loop.mp4")
    out = tmp_path / "out"
    assert cli(detect_args([videos], checkpoint, out, "--no-video")) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    nowhere = "a symbolic link that leads nowhere (a loop, or its target is missing)"
    assert [{key: record[key] for key in ("name", "status")} | {"reason": record.get("reason")}
            for record in summary["inputs"]] == [
        {"name": "a", "status": "ok", "reason": None},
        {"name": "fake", "status": "skipped", "reason": "a folder named like a video, with no frames in it"},
        {"name": "gone", "status": "skipped", "reason": nowhere},
        {"name": "loop", "status": "skipped", "reason": nowhere}]
    assert summary["inputs"][3]["input"] == str(videos / "loop.mp4")
    assert (summary["totals"]["ok"], summary["totals"]["failed"], summary["totals"]["skipped"]) == (1, 0, 3)
    assert sorted(path.name for path in out.iterdir()) == ["a", "run.json", "summary.json"]
    assert_complete(out, "a", video=False)
    assert [line.split()[:3] for line in printed.splitlines() if line.endswith(f"skipped: {nowhere}")] == [
        ["gone", "-", "-"], ["loop", "-", "-"]]
    assert "1 of 4 inputs done (0 failed, 3 skipped)" in printed
    assert cli(detect_args([videos], checkpoint, out, "--no-video", "--resume")) == 0  # the same inputs
    assert json.loads((out / "summary.json").read_text())["totals"]["done_before_resume"] == 1


def test_skip_bad_reports_the_corrupt_file_and_finishes_the_others(cli, checkpoint, folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(detect_args([folder], checkpoint, out, "--skip-bad")) == 0
    printed = capsys.readouterr().out
    for name in FRAMES:
        assert_complete(out, name)
    summary = json.loads((out / "summary.json").read_text())
    assert [record["name"] for record in summary["inputs"]] == ["a", "b", "c_bad", "d"]
    bad = summary["inputs"][2]
    assert bad["status"] == "failed" and str(folder / "c_bad.mp4") in bad["error"] and "not a video" in bad["error"]
    totals = summary["totals"]
    assert totals["frames_per_second"] == pytest.approx(totals["frames"] / totals["seconds"], rel=1e-2)
    assert totals | {"seconds": 0, "frames_per_second": 0} == {
        "inputs": 4, "ok": 3, "failed": 1, "skipped": 0, "frames": sum(FRAMES.values()), "seconds": 0,
        "frames_per_second": 0,
        "detections": sum(r.get("detections", 0) for r in summary["inputs"]), "done_before_resume": 0,
        "world_size": 1}
    assert not (out / "c_bad" / "detections.jsonl").exists()
    table = printed.splitlines()
    assert table[0].split() == ["input", "frames", "detections", "seconds", "status"]
    assert table[3].startswith("c_bad") and "failed:" in table[3] and "3 of 4 inputs done (1 failed)" in printed


def test_without_skip_bad_it_stops_and_resume_continues(cli, checkpoint, folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = detect_args([folder], checkpoint, out, "--no-video")
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder / "c_bad.mp4") in err and "--skip-bad" in err, err
    assert_complete(out, "a", video=False)
    assert_complete(out, "b", video=False)
    assert not (out / "d").exists() and not (out / "summary.json").exists()
    finished_at = (out / "a" / "detections.jsonl").stat().st_mtime_ns

    assert cli(args + ["--resume", "--n", "5"]) == 2  # another option than the interrupted run's
    assert "another test.num_frames (3 != 5)" in capsys.readouterr().err
    assert cli(args + ["--resume", "--skip-bad"]) == 0
    assert (out / "a" / "detections.jsonl").stat().st_mtime_ns == finished_at  # done before: not redone
    assert_complete(out, "d", video=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["done_before_resume"] == 2 and summary["totals"]["failed"] == 1


def test_two_rank_batch_equals_one_process(cli, checkpoint, folder, tmp_path):
    inputs = [folder / "a.mp4", folder / "b.mkv", folder / "d.mp4"]
    assert cli(detect_args(inputs, checkpoint, tmp_path / "one", "--no-video")) == 0
    result = run(detect_args(inputs, checkpoint, tmp_path / "two", "--no-video"), nproc=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 rank(s)" in result.stdout
    for name in FRAMES:
        assert ((tmp_path / "two" / name / "detections.jsonl").read_bytes()
                == (tmp_path / "one" / name / "detections.jsonl").read_bytes())
