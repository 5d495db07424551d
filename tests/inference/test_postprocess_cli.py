"""``--post seqnms`` (and ``--metrics vid,coco``) on the model paths: ``dsfnet eval CONFIG`` and ``dsfnet detect``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.data.vid import read_vid_split
from dsfnet.evaluation.detections import read_detections
from dsfnet.evaluation.vid_map import evaluate
from dsfnet.inference.predictor import FrameResult
from dsfnet.postprocess.seqnms import SeqNMSParams, seq_nms_dataset, seq_nms_frame_results
from inferencehelpers import TINY, decode_all, write_video


@pytest.fixture(scope="module")
def vid_root(tmp_path_factory):
    return generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "ILSVRC2015", num_videos=1, seed=0,
                                  num_val_videos=2, num_frames=6, num_det_images=0, size=(96, 64))


def test_eval_model_with_seqnms_and_coco(cli, checkpoint, vid_root, tmp_path, capsys):
    out = tmp_path / "eval"
    code = cli(["eval", str(TINY), "--weights", str(checkpoint), "--data", str(vid_root), "--out", str(out),
                "--n", "3", "--post", "seqnms", "--seqnms-rescore", "max", "--metrics", "vid,coco"])
    assert code == 0, capsys.readouterr().err
    dataset = read_vid_split(vid_root, "VID_val_videos")
    raw = read_detections(out / "detections.jsonl", dataset)
    processed = read_detections(out / "detections_seqnms.jsonl", dataset)
    expected = seq_nms_dataset(dataset, raw, SeqNMSParams(rescore="max"))
    assert 0 < len(processed) < len(raw)
    rows = lambda d: sorted(zip(d.frame_ids.tolist(), d.scores.tolist(), d.boxes.tolist(), d.labels.tolist()))
    assert rows(processed) == rows(expected)
    report = json.loads((out / "report.json").read_text())
    assert report["post"] == "seqnms" and report["seqnms"]["rescore"] == "max"
    assert report["map"] == pytest.approx(evaluate(dataset, processed).map)  # the post-processed ones are evaluated
    assert report["coco"]["AP50"] is not None
    assert len(json.loads((out / "results.json").read_text())) == len(processed)


def frame_results(lines: list[dict]) -> list[FrameResult]:
    return [FrameResult(line["frame_index"], np.array([d["box"] for d in line["detections"]], np.float32),
                        np.array([d["label"] for d in line["detections"]], np.int64),
                        np.array([d["score"] for d in line["detections"]], np.float32),
                        [d["class"] for d in line["detections"]]) for line in lines]


def test_detect_with_seqnms_post_processes_the_whole_video(cli, checkpoint, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", 10, 64, 48)
    raw, post = tmp_path / "raw", tmp_path / "post"
    common = ["--weights", str(checkpoint), "--n", "3", "--no-progress"]
    assert cli(["detect", str(video), "--out", str(raw), "--score-thr", "0", "--no-video", *common]) == 0
    assert cli(["detect", str(video), "--out", str(post), "--score-thr", "0.05", "--post", "seqnms", *common]) == 0, \
        capsys.readouterr().err
    read = lambda path: [json.loads(line) for line in path.read_text().splitlines()]
    expected = seq_nms_frame_results(frame_results(read(raw / "detections.jsonl")), score_thresh=0.05)
    got = frame_results(read(post / "detections.jsonl"))
    assert [r.index for r in got] == list(range(10))
    for mine, theirs in zip(got, expected):
        assert mine.scores.tolist() == pytest.approx(theirs.scores.tolist())
        assert mine.boxes.tolist() == theirs.boxes.tolist() and mine.class_names == theirs.class_names
    assert sum(len(r.scores) for r in got) > 0
    assert decode_all(post / "annotated.mp4") == (10, 64, 48)  # drawn from a second decode


def test_seqnms_options_without_post_seqnms_are_named_as_ignored(cli, checkpoint, vid_root, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", 4, 64, 48)
    code = cli(["detect", str(video), "--weights", str(checkpoint), "--out", str(tmp_path / "out"), "--n", "3",
                "--no-progress", "--no-video", "--seqnms-link-iou", "0.3", "--seqnms-rescore", "max"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert code == 0 and warnings == ["dsfnet detect: warning: --seqnms-link-iou, --seqnms-rescore: ignored, they "
                                      "apply with --post seqnms only (this run has --post none)"]
    assert len((tmp_path / "out" / "detections.jsonl").read_text().splitlines()) == 4
    detections = tmp_path / "empty.jsonl"
    detections.write_text("")
    code = cli(["eval", "--detections", str(detections), "--data", str(vid_root), "--out", str(tmp_path / "eval"),
                "--seqnms-nms-iou", "0.5"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "seqnms" in line]
    assert code == 0 and warnings == ["dsfnet eval: warning: --seqnms-nms-iou: ignored, it applies with --post "
                                      "seqnms only (this run has --post none)"]
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["post"] == "none"
