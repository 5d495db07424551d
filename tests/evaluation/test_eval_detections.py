"""Detection files: JSON-lines and devkit text, round trips, auto-detection and clear errors."""

import json

import numpy as np
import pytest

from dsfnet.evaluation.detections import (Detections, read_detections, write_devkit_txt, write_jsonl)
from evalhelpers import dataset, dets, video

BIG = [0, 0, 99, 99]


@pytest.fixture
def ds():
    return dataset(video("val/v0", [[(1, 1, BIG)], []]), video("val/v1", [[(2, 1, BIG)]]))


def sample():
    return dets([(0, 1, 0.9, [0.5, 1.25, 99.0, 98.75]), (0, 3, 0.0, [-5, -5, 2000, 1500]),
                 (2, 2, 0.123456789012345, [1, 2, 3, 4])])


def assert_same(a: Detections, b: Detections):
    order_a = np.lexsort((-a.scores, a.frame_ids))
    order_b = np.lexsort((-b.scores, b.frame_ids))
    for field in ("frame_ids", "labels", "scores", "boxes"):
        np.testing.assert_array_equal(getattr(a, field)[order_a], getattr(b, field)[order_b])


def test_jsonl_round_trip_and_format(ds, tmp_path):
    path = tmp_path / "d.jsonl"
    write_jsonl(path, ds, sample())
    lines = path.read_text().splitlines()
    assert len(lines) == 3                                   # one object per frame, empty frames included
    first = json.loads(lines[0])
    assert first["video"] == "val/v0" and first["frame_index"] == 0
    assert first["detections"][0] == {"box": [0.5, 1.25, 99.0, 98.75], "label": 1, "class": "a", "score": 0.9}
    assert json.loads(lines[1]) == {"video": "val/v0", "frame_index": 1, "detections": []}
    assert_same(read_detections(path, ds), sample())         # boxes not clipped, score 0 kept


def test_devkit_round_trip(ds, tmp_path):
    path = tmp_path / "d.txt"
    write_devkit_txt(path, sample())
    first = path.read_text().splitlines()[0].split()
    assert first[:3] == ["1", "1", "0.9"]                    # 1-based frame index
    assert_same(read_detections(path, ds), sample())


def test_jsonl_accepts_class_or_label(ds, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"video": "val/v1", "frame_index": 0,
                                "detections": [{"box": BIG, "class": "b", "score": 0.5},
                                               {"box": BIG, "label": 3, "score": 0.4}]}) + "\n\n")
    d = read_detections(path, ds)
    assert d.frame_ids.tolist() == [2, 2] and d.labels.tolist() == [2, 3]


def test_empty_file_is_no_detections(ds, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert len(read_detections(path, ds)) == 0


JSON_ERRORS = [
    ('{"video": "val/v0", "frame_index": 0, "detections": [{"box": [0,0,9,9], "class": "zebra", "score": 1}]}',
     "class 'zebra'"),
    ('{"video": "val/v0", "frame_index": 0, "detections": [{"box": [0,0,9,9], "label": 4, "score": 1}]}',
     "out of range"),
    ('{"video": "val/v0", "frame_index": 0, "detections": [{"box": [0,0,9,9], "label": 0, "score": 1}]}',
     "out of range"),
    ('{"video": "val/v9", "frame_index": 0, "detections": []}', "not in the dataset"),
    ('{"video": "val/v0", "frame_index": 5, "detections": []}', "not in the dataset"),
    ('{"video": "val/v0", "frame_index": 0, "detections": [{"box": [0,0,9], "label": 1, "score": 1}]}', "box"),
    ('{"video": "val/v0", "frame_index": 0, "detections": [{"box": [0,0,9,9], "label": 1}]}', "score"),
    ('{"video": "val/v0", "frame_index": 0, "detections": [', "not valid JSON"),
]


def assert_error_names_file_and_line(ds, path, text, line, message):
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_detections(path, ds)
    assert f"{path}:{line}:" in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize("bad, message", JSON_ERRORS)
def test_jsonl_errors_name_file_and_line(ds, tmp_path, bad, message):
    good = json.dumps({"video": "val/v0", "frame_index": 0, "detections": []})
    assert_error_names_file_and_line(ds, tmp_path / "bad.jsonl", good + "\n" + bad + "\n", 2, message)


def test_class_name_decides_over_label(ds, tmp_path):
    path = tmp_path / "named.jsonl"
    name = ds.class_names[0]
    path.write_text(json.dumps({"video": "val/v0", "frame_index": 0, "detections": [
        {"box": [0, 0, 9, 9], "label": 2, "class": name, "score": 1}]}) + "\n")
    assert read_detections(path, ds).labels.tolist() == [1]


TXT_ERRORS = [
    ("1 1 0.5 0 0 9", "expected 7 fields"),
    ("1 1 0.5 0 0 9 9 7", "expected 7 fields"),
    ("1 1 high 0 0 9 9", "'high' is not a finite number"),
    ("1 1 nan 0 0 9 9", "not a finite number"),
    ("4 1 0.5 0 0 9 9", "frame_index 4 out of range 1..3"),
    ("0 1 0.5 0 0 9 9", "frame_index 0 out of range"),
    ("1 4 0.5 0 0 9 9", "class_index 4 is not a class"),
    ("1.5 1 0.5 0 0 9 9", "must be an integer"),
]


@pytest.mark.parametrize("bad, message", TXT_ERRORS)
def test_devkit_errors_name_file_and_line(ds, tmp_path, bad, message):
    assert_error_names_file_and_line(ds, tmp_path / "bad.txt", "1 1 0.5 0 0 9 9\n\n" + bad + "\n2 1 0.5 0 0 9 9\n",
                                     3, message)


def test_missing_file(ds, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_detections(tmp_path / "nope.txt", ds)


def test_writers_are_atomic_on_error(ds, tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    path.write_text("previous complete file\n")
    with pytest.raises(ValueError):
        write_jsonl(path, ds, dets([(7, 1, 0.5, BIG)]))       # frame position out of range
    bad = dets([(0, 1, 0.5, BIG)])
    bad.labels[:] = 9
    with pytest.raises(ValueError, match="labels"):
        write_jsonl(path, ds, bad)
    # a failure in the middle of writing (second line) leaves the previous file untouched
    import dsfnet.evaluation.detections as module
    calls = []
    real_dumps = json.dumps

    def failing_dumps(obj):
        calls.append(obj)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_dumps(obj)

    monkeypatch.setattr(module.json, "dumps", failing_dumps)
    with pytest.raises(OSError, match="disk full"):
        write_jsonl(path, ds, sample())
    monkeypatch.undo()
    assert path.read_text() == "previous complete file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]   # no temp file left behind
