"""``dsfnet eval --detections FILE --post seqnms --metrics vid,coco`` on a tiny VID tree."""

from __future__ import annotations

import json

import pytest

from dsfnet.commands import eval as eval_cmd
from dsfnet.data.vid import read_vid_split
from dsfnet.evaluation.detections import read_detections
from test_eval_report_cli import parse, vid_root  # noqa: F401  (vid_root: the tiny VID tree fixture)

# devkit text, 1-based global frames: 1, 2 = snip0 (airplane at (10, 10, 59, 59), then (12, 10, 61, 59));
# 3 = snip1 frame 0 (bear). The airplane flickers (0.9, then 0.2 in frame 2, below a false positive at 0.5);
# a duplicate at 0.4 overlaps it in frame 1 with IoU 0.38.
DETECTIONS = ("1 1 0.9 10 10 59 59\n"
              "1 1 0.4 32 10 81 59\n"
              "2 1 0.2 12 10 61 59\n"
              "2 1 0.5 200 150 240 190\n"
              "3 3 0.7 100 100 199 179\n")


def test_seqnms_and_coco_metrics_on_a_detection_file(vid_root, tmp_path, capsys):
    det = tmp_path / "dets.txt"
    det.write_text(DETECTIONS)
    plain, post = tmp_path / "plain", tmp_path / "post"
    assert eval_cmd.run(parse(["--detections", str(det), "--data", str(vid_root), "--out", str(plain)])) == 0
    before = json.loads((plain / "report.json").read_text())
    # airplane ranks TP 0.9, FP 0.5, FP 0.4, TP 0.2: AP = 0.5 + 0.5 * 2/4
    assert before["per_class_ap"]["airplane"] == pytest.approx(0.75) and before["post"] == "none"
    assert "coco" not in before and not (plain / "results.json").exists()

    assert eval_cmd.run(parse(["--detections", str(det), "--data", str(vid_root), "--out", str(post),
                               "--post", "seqnms", "--metrics", "vid,coco"])) == 0
    report = json.loads((post / "report.json").read_text())
    # Seq-NMS: the airplane's two boxes become one sequence at (0.9 + 0.2) / 2 = 0.55 > 0.5, the duplicate is
    # suppressed: AP 1 for both classes
    assert report["per_class_ap"]["airplane"] == 1.0 and report["map"] == 1.0
    assert report["post"] == "seqnms"
    assert report["seqnms"]["link_iou"] == 0.5 and report["seqnms"]["rescore"] == "avg"
    assert (report["seqnms"]["detections_before"], report["seqnms"]["detections_after"]) == (5, 4)
    dataset = read_vid_split(vid_root, "VID_val_videos")
    processed = read_detections(post / "detections_seqnms.jsonl", dataset)
    assert sorted(processed.scores.tolist()) == pytest.approx([0.5, 0.55, 0.55, 0.7])
    assert set(report["coco"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert report["coco"]["AP50"] == 1.0
    assert len(json.loads((post / "results.json").read_text())) == 4
    assert json.loads((post / "ground_truth_cocovid.json").read_text())["videos"]
    text = (post / "report.txt").read_text()
    assert "COCO protocol" in text and "AP50" in text
    assert "AP50" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--metrics", "coco"], ["--metrics", "vid,map"], ["--seqnms-link-iou", "1.5"],
                                  ["--post", "repp"], ["--seqnms-rescore", "mean"]])
def test_bad_post_and_metrics_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse(["--detections", "x.txt", *argv])
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_help_says_seqnms_is_offline(capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    out = capsys.readouterr().out
    assert "offline only" in out and "--seqnms-nms-iou" in out and "--metrics" in out


def test_a_run_without_post_or_coco_removes_the_earlier_runs_files(vid_root, tmp_path, capsys):
    """Issue 26, case 2: no Seq-NMS or COCO file of an earlier run stays beside a report that has neither."""
    det = tmp_path / "dets.txt"
    det.write_text(DETECTIONS)
    out = tmp_path / "out"
    base = ["--detections", str(det), "--data", str(vid_root), "--out", str(out)]
    assert eval_cmd.run(parse(base + ["--post", "seqnms", "--metrics", "vid,coco"])) == 0
    stale = ["detections_seqnms.jsonl", "results.json", "ground_truth_cocovid.json"]
    assert all((out / name).is_file() for name in stale)
    capsys.readouterr()
    assert eval_cmd.run(parse(base)) == 0
    printed = capsys.readouterr().out
    assert [name for name in stale if (out / name).exists()] == []
    assert all(f"removed {out / name} of an earlier run" in printed for name in stale)
    report = json.loads((out / "report.json").read_text())
    assert report["post"] == "none" and "coco" not in report
