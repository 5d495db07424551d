"""Issue 26, case 1: a resumed batch detect cannot mix post-processing settings (real torchrun ranks, SIGKILL)."""

from __future__ import annotations

import json

from inferencehelpers import write_video
from launch import files, run_and_kill

FRAMES = 6


def test_killed_two_rank_batch_refuses_a_resume_with_another_post(cli, checkpoint, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b", "c", "d"):
        write_video(videos / f"{name}.mp4", FRAMES)
    out = tmp_path / "out"
    args = ["detect", str(videos), "--weights", str(checkpoint), "--out", str(out), "--score-thr", "0.05",
            "--no-progress", "--no-video"]
    finished = lambda: [name for name in "abcd" if (out / name / "result.json").is_file()]  # noqa: E731
    status = run_and_kill(args, nproc=2, ready=lambda: len(finished()) >= 1)
    assert status != 0 and not (out / "summary.json").exists()
    done = finished()
    assert done and len(done) < 4, done
    before = {name: (out / name / "detections.jsonl").read_bytes() for name in done}

    assert cli(args + ["--resume", "--post", "seqnms"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and 'another post ("none" != "seqnms")' in err, err
    assert {name: (out / name / "detections.jsonl").read_bytes() for name in done} == before

    assert cli(args + ["--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["post"] == "none" and summary["totals"]["ok"] == 4
    assert {name: (out / name / "detections.jsonl").read_bytes() for name in done} == before
    assert files(out, ".*.tmp") == []
