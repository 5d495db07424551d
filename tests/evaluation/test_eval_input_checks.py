"""Issue 12 for ``dsfnet eval``: repeated detection records, ground-truth files with repeated ids or non-finite
boxes, empty and binary detection files, a read-only --out."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from dsfnet import cli
from faulthelpers import make_read_only, one_line_error, snapshot

GROUND_TRUTH = {
    "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "dog"}],
    "videos": [{"id": 1, "name": "val/v0"}],
    "images": [{"id": i + 1, "video_id": 1, "frame_id": i, "file_name": f"v0/{i:06d}.JPEG", "width": 64,
                "height": 48} for i in range(3)],
    "annotations": [{"id": i + 1, "image_id": i + 1, "video_id": 1, "category_id": 1, "instance_id": 0,
                     "bbox": [10, 10, 20, 15]} for i in range(3)],
}


def record(frame: int, score: float = 0.9) -> str:
    return json.dumps({"video": "val/v0", "frame_index": frame,
                       "detections": [{"box": [10, 10, 30, 25], "class": "car", "score": score}]})


def evaluate(tmp_path, detections: str | bytes, ground_truth: dict = GROUND_TRUTH, out=None) -> int:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(ground_truth))
    det = tmp_path / "det.jsonl"
    det.write_bytes(detections if isinstance(detections, bytes) else detections.encode())
    return cli.main(["eval", "--detections", str(det), "--gt-json", str(gt), "--out", str(out or tmp_path / "eval")])


def test_a_frame_listed_twice_is_an_error_naming_file_and_line(tmp_path, capsys):
    lines = [record(0), record(1), record(2), record(1)]
    code = evaluate(tmp_path, "\n".join(lines) + "\n")
    one_line_error(capsys, code, "eval", f"{tmp_path / 'det.jsonl'}:4:", "frame_index=1", "first on line 2")
    assert not (tmp_path / "eval").exists()


def _mutated(change) -> dict:
    document = copy.deepcopy(GROUND_TRUTH)
    change(document)
    return document


@pytest.mark.parametrize("change, needle", [
    (lambda d: d["images"].append(dict(d["images"][0])), "image id 1"),
    (lambda d: d["images"].append(dict(d["images"][2], id=9, file_name="x.JPEG")), "(video_id, frame_id) (1, 2)"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0], image_id=2)), "annotation id 1"),
    (lambda d: d["videos"].append({"id": 1, "name": "val/v1"}), "video id 1"),
    (lambda d: d["categories"].append({"id": 2, "name": "zebra"}), "category id 2"),
    (lambda d: d["annotations"][1].update(bbox=[10, float("nan"), 20, 15]), "annotation 2: bbox must be 4 finite"),
    (lambda d: d["annotations"][2].update(bbox=[10, 10, float("inf"), 15]), "annotation 3: bbox must be 4 finite"),
], ids=["image", "frame", "annotation", "video", "category", "nan", "inf"])
def test_ground_truth_errors_name_the_ground_truth_file(tmp_path, capsys, change, needle):
    code = evaluate(tmp_path, record(0) + "\n", _mutated(change))
    error = one_line_error(capsys, code, "eval", f"{tmp_path / 'gt.json'}", needle)
    assert "det.jsonl" not in error


@pytest.mark.parametrize("content", ["", "  \n\n\t\n"], ids=["empty", "whitespace"])
def test_empty_detection_file_warns_naming_it(tmp_path, capsys, caplog, content):
    with caplog.at_level(logging.WARNING):
        assert evaluate(tmp_path, content) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{tmp_path / 'det.jsonl'}: the detection file is empty: every class gets AP 0"]
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["map"] == 0.0


def test_binary_detection_file_is_named(tmp_path, capsys):
    code = evaluate(tmp_path, record(0).encode() + b"\n\x89PNG\xff\xfe\x00\n")
    one_line_error(capsys, code, "eval", f"{tmp_path / 'det.jsonl'}:2: not a text detection file")


def test_read_only_out_keeps_the_earlier_report(tmp_path, capsys, monkeypatch):
    out = tmp_path / "eval"
    assert evaluate(tmp_path, record(0) + "\n", out=out) == 0
    before = snapshot(out)
    make_read_only(monkeypatch, out)
    code = evaluate(tmp_path, record(0, score=0.5) + "\n", out=out)
    one_line_error(capsys, code, "eval", f"cannot write {out}/", "read-only file system")
    monkeypatch.undo()
    assert snapshot(out) == before
