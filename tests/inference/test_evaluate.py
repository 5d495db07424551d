"""Inference over a split: predict_dataset, evaluate_model (trainer hook) and ``dsfnet eval CONFIG --weights``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.data.vid import read_vid_split
from dsfnet.inference.evaluate import evaluate_model, predict_dataset
from dsfnet.inference.predictor import VideoPredictor
from inferencehelpers import TINY, make_model


@pytest.fixture(scope="module")
def vid_root(tmp_path_factory):
    return generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "ILSVRC2015", num_videos=1, seed=0,
                                  num_val_videos=2, num_frames=6, num_det_images=0, size=(96, 64))


def test_predict_dataset_positions_and_original_pixels(vid_root):
    dataset = read_vid_split(vid_root, "VID_val_videos", cache_dir=vid_root / ".cache")
    model, config = make_model("dsfnet")
    detections = predict_dataset(model, dataset, config, progress=False)
    frames = dataset.frames()
    assert len(detections) and detections.frame_ids.max() < len(frames)
    assert set(np.unique(detections.frame_ids)) == set(range(len(frames)))  # score_thresh 0 keeps every frame
    # the second video's detections are those of the predictor on its frames, shifted by the first's length
    second = dataset.videos[1]
    results = list(VideoPredictor(model, config, score_thresh=0.0).predict([f.image_path for f in second.frames]))
    offset = len(dataset.videos[0].frames)
    mine = detections.select(detections.frame_ids == offset + 2)
    assert np.allclose(np.sort(mine.scores), np.sort(results[2].scores.astype(np.float64)))
    assert (detections.boxes[:, 2] <= frames[0].width + 1).all()


def test_evaluate_model_restores_training_mode_and_limits_videos(vid_root):
    dataset = read_vid_split(vid_root, "VID_val_videos", cache_dir=vid_root / ".cache")
    model, config = make_model("frame")
    model.train()
    result = evaluate_model(model, dataset, config, "cpu", max_videos=1)
    assert model.training
    assert result.num_frames == len(dataset.videos[0].frames)
    assert result.map is None or 0.0 <= result.map <= 1.0


def test_eval_command_writes_detections_and_report(cli, checkpoint, vid_root, tmp_path, capsys):
    from dsfnet.evaluation.detections import read_detections

    out = tmp_path / "eval"
    code = cli(["eval", str(TINY), "--weights", str(checkpoint), "--data", str(vid_root), "--out", str(out),
                "--mode", "exact", "--n", "3", "--sampling", "stride"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (out / "detections.jsonl").is_file() and (out / "report.json").is_file()
    dataset = read_vid_split(vid_root, "VID_val_videos")
    detections = read_detections(out / "detections.jsonl", dataset)
    assert len(detections) > 0
    report = json.loads((out / "report.json").read_text())
    assert "map" in json.dumps(report)
    assert "exact" in json.dumps(report)


def test_eval_command_rejects_another_architecture(cli, checkpoint, vid_root, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(f"base: {TINY}\nmodel:\n  variant: baseline\n")
    code = cli(["eval", str(other), "--weights", str(checkpoint), "--data", str(vid_root), "--out",
                str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code != 0 and "model.variant" in err
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("sampling,memory", [("causal", "spread"), ("shuffled_window", "recent")])
def test_eval_command_runs_causal_and_shuffled_window_sampling(cli, checkpoint, vid_root, tmp_path, capsys, sampling,
                                                                memory):
    out = tmp_path / "eval"
    code = cli(["eval", str(TINY), "--weights", str(checkpoint), "--data", str(vid_root), "--out", str(out),
                "--n", "3", "--sampling", sampling, "--memory", memory])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert sampling in json.dumps(report) and memory in json.dumps(report)
    assert sum(1 for _ in open(out / "detections.jsonl")) == 12  # 2 videos x 6 frames
