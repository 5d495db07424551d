"""Fuzzing the detection files that ``dsfnet eval --detections`` reads: JSON-lines and devkit text."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord
from dsfnet.errors import InputError
from dsfnet.evaluation.detections import Detections, read_detections, write_devkit_txt, write_jsonl

from tests.fuzz.fuzzhelpers import FUZZ, any_input, mutated_document, read_or_input_error

CLASSES = ("airplane", "bear", "dog")
DATASET = DatasetRecord(
    videos=[VideoRecord(name=name, frames=[FrameRecord(video=name, frame_index=i, image_path=f"/{name}/{i}.jpg",
                                                       width=64, height=48) for i in range(3)])
            for name in ("val/a", "val/b")],
    class_names=CLASSES)
NUM_FRAMES = 6
VALID = Detections(frame_ids=[0, 0, 2, 5], labels=[1, 3, 2, 1], scores=[0.9, 0.5, 0.25, 0.0],
                   boxes=[[1, 2, 30, 40], [0, 0, 63, 47], [5.5, 6.25, 7.5, 8.75], [10, 10, 12, 12]])


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("valid")
    write_jsonl(folder / "d.jsonl", DATASET, VALID)
    write_devkit_txt(folder / "d.txt", VALID)
    return {"jsonl": (folder / "d.jsonl").read_bytes(), "txt": (folder / "d.txt").read_bytes()}


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "fuzzed_detections"


def check_detections(detections: Detections) -> None:
    """What the evaluator relies on: frames of the split, labels of its classes, finite scores and boxes."""
    assert ((detections.frame_ids >= 0) & (detections.frame_ids < NUM_FRAMES)).all()
    assert ((detections.labels >= 1) & (detections.labels <= len(CLASSES))).all()
    assert np.isfinite(detections.scores).all() and np.isfinite(detections.boxes).all()


def read_back(path, data: bytes, strict: bool = True) -> None:
    path.write_bytes(data)
    detections = read_or_input_error(lambda: read_detections(path, DATASET, strict=strict), path)
    if detections is not None:
        check_detections(detections)


def test_valid_files_read_back(valid_files, fuzz_file):
    for data in valid_files.values():
        fuzz_file.write_bytes(data)
        detections = read_detections(fuzz_file, DATASET)
        assert len(detections) == len(VALID) and sorted(detections.scores) == sorted(VALID.scores)


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(["jsonl", "txt"]), strict=st.booleans())
def test_mutated_bytes(valid_files, fuzz_file, data, fmt, strict):
    read_back(fuzz_file, data.draw(any_input(valid_files[fmt])), strict)


@FUZZ
@given(data=st.data(), strict=st.booleans())
def test_mutated_jsonl_records(valid_files, fuzz_file, data, strict):
    records = [json.loads(line) for line in valid_files["jsonl"].decode().splitlines()]
    line = data.draw(st.integers(0, len(records) - 1))
    records[line] = data.draw(mutated_document(records[line]))
    read_back(fuzz_file, "".join(json.dumps(record) + "\n" for record in records).encode(), strict)


@FUZZ
@given(rows=st.lists(st.lists(st.sampled_from(["1", "3", "7", "0", "-1", "2.5", "1e999", "nan", "x", "1e308", "-0",
                                               "0x1", "١"]), min_size=6, max_size=8), max_size=5))
def test_devkit_rows(fuzz_file, rows):
    read_back(fuzz_file, "".join(" ".join(row) + "\n" for row in rows).encode())


#: inputs the fuzzing found (or that its findings led to), each once a traceback (TypeError, OverflowError,
#: RecursionError, ValueError) instead of a one-line error
FOUND = [
    '{"video": "val/a", "frame_index": 0, "detections": [{"box": [1, 2, 3, 4], "class": [], "score": 0.5}]}\n',
    '{"video": "val/a", "frame_index": 0, "detections": [{"box": [1, 2, 3, 1' + "0" * 400 + '], "label": 1, '
    '"score": 0.5}]}\n',
    '{"video": "val/a", "frame_index": 0, "detections": ' + "[" * 100_000 + "\n",
    '{"video": "val/a", "frame_index": 0, "detections": [], "x": ' + "1" * 5000 + "}\n",
]


@pytest.mark.parametrize("text", FOUND, ids=["unhashable class", "int past 1e308", "deep nesting", "5000 digits"])
def test_found_inputs_are_one_line_errors(fuzz_file, text):
    fuzz_file.write_text(text)
    with pytest.raises(InputError, match=f"^{re.escape(str(fuzz_file))}:1: "):
        read_detections(fuzz_file, DATASET)
