"""Sharded, resumable ``dsfnet eval`` (issue 15, acceptance 1-2): real torchrun processes with gloo ranks."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.multiprocessing as mp

from dsfnet import cli
from dsfnet.config import load_config
from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.data.vid import read_vid_split
from dsfnet.engine.checkpoint import save_checkpoint, training_checkpoint
from dsfnet.inference.manifest import first_difference, start_run
from dsfnet.inference.sharding import balanced_assignment
from inferencehelpers import TINY, make_model
from launch import files, free_port, run, run_and_kill, validating_train_worker

NUM_VIDEOS = 6


@pytest.fixture(scope="module")
def vid_root(tmp_path_factory):
    return generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "ILSVRC2015", num_videos=1, seed=0,
                                  num_val_videos=NUM_VIDEOS, num_frames=8, num_det_images=0, size=(96, 64))


def tiny_config_for(vid_root, *overrides: str):
    """The tiny model trained on the synthetic root's VID training clips (no DET images)."""
    return load_config(TINY, [f"data.root={vid_root}", "data.train_splits=[VID_train_15frames]", *overrides])


def eval_args(checkpoint, vid_root, out, *more: str) -> list[str]:
    return ["eval", str(TINY), "--weights", str(checkpoint), "--data", str(vid_root), "--out", str(out),
            "--device", "cpu", *more]


@pytest.fixture(scope="module")
def reference(checkpoint, vid_root, tmp_path_factory):
    """A one-process evaluation (in this process, one thread): the result every other run must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "eval"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(eval_args(checkpoint, vid_root, out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def report(folder) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_balanced_assignment_by_frame_count():
    # longest first to the least loaded rank: 5 -> r0, 3 -> r1, 3 -> r1 (3 < 5), 2 -> r0 (5 < 6), 2 -> r1, 1 -> r0
    assert balanced_assignment([5, 3, 3, 2, 2, 1], 2) == [[0, 3, 5], [1, 2, 4]]
    assert balanced_assignment([4, 4, 4], 1) == [[0, 1, 2]]
    assert balanced_assignment([7, 1], 4) == [[0], [1], [], []]
    shares = balanced_assignment([100, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 2)
    assert shares == [[0], list(range(1, 11))]  # the long video alone on one rank
    with pytest.raises(ValueError):
        balanced_assignment([1], 0)


def test_manifest_refuses_a_different_run_and_an_unfinished_one(tmp_path):
    identity = {"checkpoint.sha256": "aa", "test.num_frames": 3, "split": "val"}
    assert start_run(tmp_path, identity, resume=False) is False
    with pytest.raises(FileExistsError, match="unfinished run: continue it with --resume"):
        start_run(tmp_path, identity, resume=False)
    with pytest.raises(ValueError, match=r"another test.num_frames \(3 != 5\)"):
        start_run(tmp_path, {**identity, "test.num_frames": 5}, resume=True)
    assert start_run(tmp_path, identity, resume=True) is True
    with pytest.raises(FileNotFoundError, match="no run to resume"):
        start_run(tmp_path / "empty", identity, resume=True)
    assert first_difference({"a": [1, 2]}, {"a": (1, 2)}) == "a ([1, 2] != [1, 2])"  # only JSON forms compare equal


def test_two_rank_eval_equals_one_process(checkpoint, vid_root, reference, tmp_path):
    out = tmp_path / "eval"
    result = run(eval_args(checkpoint, vid_root, out), nproc=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 rank(s)" in result.stdout and "frames/s overall" in result.stdout
    assert files(out / "videos") == [f"{index:06d}.npz" for index in range(NUM_VIDEOS)]
    assert (out / "detections.jsonl").read_bytes() == (reference / "detections.jsonl").read_bytes()
    assert report(out) == report(reference)
    assert report(out)["num_frames"] == NUM_VIDEOS * 8 and report(out)["num_detections"] > 0


def test_killed_two_rank_eval_resumes_to_the_uninterrupted_result(checkpoint, vid_root, reference, tmp_path,
                                                                   capsys):
    out = tmp_path / "eval"
    args = eval_args(checkpoint, vid_root, out)
    status = run_and_kill(args, nproc=2, ready=lambda: len(files(out / "videos", "*.npz")) >= 2)
    assert status == -9
    done = files(out / "videos", "*.npz")
    assert 2 <= len(done) < NUM_VIDEOS and not (out / "report.json").exists()
    finished_at = {name: (out / "videos" / name).stat().st_mtime_ns for name in done}

    assert cli.main(args) == 2  # a new run into the folder of an unfinished one is refused
    assert "unfinished run: continue it with --resume" in capsys.readouterr().err

    result = run(args + ["--resume"], nproc=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(done)} videos done before the resume" in result.stdout
    assert {name: (out / "videos" / name).stat().st_mtime_ns for name in done} == finished_at  # not redone
    assert (out / "detections.jsonl").read_bytes() == (reference / "detections.jsonl").read_bytes()
    assert report(out) == report(reference)


def test_resume_with_another_checkpoint_or_option_is_refused(checkpoint, vid_root, reference, tmp_path, capsys):
    out = tmp_path / "eval"
    shutil.copytree(reference, out)
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    model, config = make_model("dsfnet", 1)
    other = save_checkpoint(tmp_path / "other.pt", training_checkpoint(model, config, iteration=0))
    for args, difference in ((eval_args(other, vid_root, out, "--resume"), "another checkpoint.sha256"),
                             (eval_args(checkpoint, vid_root, out, "--resume", "--n", "5"),
                              "another test.num_frames (3 != 5)"),
                             (eval_args(checkpoint, vid_root, out, "--resume", "--mode", "exact"),
                              'another test.mode ("cached" != "exact")')):
        assert cli.main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and difference in err, err
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before
    assert cli.main(eval_args(checkpoint, vid_root, out, "--resume")) == 0  # the same run: merged again
    assert (out / "detections.jsonl").read_bytes() == (reference / "detections.jsonl").read_bytes()


def test_training_validates_on_every_rank(vid_root, tmp_path):
    """Periodic validation in a 2-rank run: each rank detects its own videos; the logged mAP is that of one
    process evaluating the final weights."""
    from dsfnet.engine.checkpoint import load_model
    from dsfnet.inference.evaluate import evaluate_model

    config = tiny_config_for(vid_root, "train.iterations=2", "train.eval_interval=2", "train.log_interval=1",
                             "train.checkpoint_interval=2")
    seen = tmp_path / "seen"
    seen.mkdir()
    mp.spawn(validating_train_worker, args=(2, free_port(), config, str(tmp_path / "run"), str(seen)), nprocs=2,
             join=True)
    videos = [json.loads((seen / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    names = [video.name for video in read_vid_split(vid_root, "VID_val_videos").videos]
    assert len(videos[0]) == len(videos[1]) == NUM_VIDEOS // 2 and sorted(videos[0] + videos[1]) == sorted(names)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [record["eval"] for record in logged if "eval" in record]
    model, checkpoint_config = load_model(tmp_path / "run" / "final.pth")
    result = evaluate_model(model, read_vid_split(vid_root, "VID_val_videos"), config)
    assert len(logged) == 1 and logged[0]["mAP"] == result.map and logged[0]["mAP_fast"] == result.motion_map["fast"]


@pytest.mark.parametrize("damage", [lambda data: data[:len(data) // 2], lambda data: b"not a zip file"])
def test_resume_redoes_an_unreadable_video_file_with_a_warning(checkpoint, vid_root, reference, tmp_path, capsys,
                                                               damage):
    """Issue 26, case 5: a truncated ``videos/000001.npz`` is found when the resume starts (not after the
    inference of every other video), named in one warning line, and that video is detected again."""
    out = tmp_path / "eval"
    shutil.copytree(reference, out)
    broken = out / "videos" / "000001.npz"
    broken.write_bytes(damage(broken.read_bytes()))
    others = {path.name: path.read_bytes() for path in (out / "videos").glob("*.npz") if path != broken}
    assert cli.main(eval_args(checkpoint, vid_root, out, "--resume")) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and f"dsfnet eval: warning: {broken} is unreadable" in warning[0], captured.err
    assert f"{NUM_VIDEOS - 1} videos done before the resume" in captured.out
    assert {path.name: path.read_bytes() for path in (out / "videos").glob("*.npz") if path != broken} == others
    assert (out / "detections.jsonl").read_bytes() == (reference / "detections.jsonl").read_bytes()
