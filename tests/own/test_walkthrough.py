"""docs/OWN_VIDEOS.md end to end on a small synthetic video with CVAT XML written here: convert, a few training
iterations from the bundled light checkpoint, eval, detect, eval of detect's output against partial ground
truth."""

from __future__ import annotations

import json
import logging

from dsfnet import cli
from dsfnet.data.split import read_split
from dsfnet.config import load_config

from tests.own.ownhelpers import squares_cvat, write_squares_video

CONFIG = "configs/own_videos_light.yaml"
FRAMES = 20


def run(*argv: str) -> None:
    assert cli.main(list(argv)) == 0, argv


def test_walkthrough_end_to_end(tmp_path, caplog):
    write_squares_video(tmp_path / "vtest.avi", FRAMES)
    squares_cvat(tmp_path / "train.xml", "vtest.avi", FRAMES)
    squares_cvat(tmp_path / "val.xml", "vtest.avi", FRAMES // 2)  # ground truth of the first half only
    train_json, val_json = tmp_path / "data" / "train.json", tmp_path / "data" / "val.json"
    run("convert", str(tmp_path / "train.xml"), "--out", str(train_json))
    run("convert", str(tmp_path / "val.xml"), "--out", str(val_json))

    # classes in another order than the files' categories: matched by name
    data = [f"data.train_json={train_json}", f"data.val_json={val_json}", "data.class_names=[car,person]",
            "data.min_size=64", "data.max_size=96", "test.num_frames=3"]
    validation = read_split(load_config(CONFIG, data).data, "val")
    assert validation.class_names == ("car", "person") and len(validation.frames()) == FRAMES // 2
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        run("train", CONFIG, "--out", str(run_dir), "--device", "cpu", "--no-progress", "--init-from",
            "bundled:light", "--opts", *data, "train.iterations=3", "train.eval_interval=0",
            "train.log_interval=1", "train.warmup_iterations=0", "train.lr_steps=[]")
    assert "re-initialised: box_head.cls_score, box_head.bbox_pred for 2 classes (1 kept by name: car)" \
        in caplog.text
    assert (run_dir / "final.pth").is_file() and (run_dir / "curves.png").stat().st_size > 0

    run("eval", CONFIG, "--weights", str(run_dir / "final.pth"), "--out", str(tmp_path / "eval"), "--device",
        "cpu", "--no-motion", "--opts", *data)
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert set(report["per_class_ap"]) == {"car", "person"}

    run("detect", str(tmp_path / "vtest.avi"), "--weights", str(run_dir / "final.pth"), "--out",
        str(tmp_path / "detect"), "--no-video", "--score-thr", "0.0", "--n", "3")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run("eval", "--detections", str(tmp_path / "detect" / "detections.jsonl"), "--gt-json", str(val_json),
            "--out", str(tmp_path / "eval_detect"), "--no-motion")
    assert f"left out {FRAMES - FRAMES // 2} detection frames that the ground truth does not cover" in caplog.text
    assert (tmp_path / "eval_detect" / "report.json").is_file()
    assert cli.main(["eval", "--detections", str(tmp_path / "detect" / "detections.jsonl"), "--gt-json",
                     str(val_json), "--out", str(tmp_path / "strict"), "--strict"]) == 2
