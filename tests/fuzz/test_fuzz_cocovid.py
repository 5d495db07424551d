"""Fuzzing the CocoVID JSON reader (``data.format: cocovid``, and the ground truth of ``dsfnet eval``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsfnet.data.cocovid import cocovid_document, read_cocovid
from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord

from tests.fuzz.fuzzhelpers import FUZZ, any_input, check_dataset, mutated_document, read_or_input_error


def _frame(video: str, index: int, boxes: list, labels: list, tracks: list) -> FrameRecord:
    return FrameRecord(video=video, frame_index=index, image_path=f"/data/{video}/{index:06d}.jpg", width=64,
                       height=48, boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                       labels=np.asarray(labels, np.int64), track_ids=np.asarray(tracks, np.int64),
                       occluded=np.asarray([True] + [False] * (len(labels) - 1), bool)[:len(labels)])


#: two videos (one with two tracks) and a still image, every kind of entry the reader handles
VALID = cocovid_document(DatasetRecord(
    videos=[VideoRecord("val/a", [_frame("val/a", 0, [[1, 2, 30, 40], [0, 0, 63, 47]], [1, 2], [0, 1]),
                                  _frame("val/a", 1, [[2, 3, 31, 41]], [1], [0])]),
            VideoRecord("val/b", [_frame("val/b", 0, [], [], []), _frame("val/b", 5, [[5, 5, 9, 9]], [3], [7])]),
            VideoRecord("det/still", [_frame("det/still", 0, [[1, 1, 2, 2]], [2], [0])], is_still_image=True)],
    class_names=("airplane", "bear", "dog"), key_frames=[(0, 1), (1, 0)]), "/data")


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "fuzzed_cocovid.json"


def read_back(path, data: bytes) -> None:
    path.write_bytes(data)
    dataset = read_or_input_error(lambda: read_cocovid(path, image_root="/data"), path)
    if dataset is not None:
        check_dataset(dataset)


def test_valid_file_reads_back(fuzz_file):
    fuzz_file.write_text(json.dumps(VALID))
    dataset = read_cocovid(fuzz_file, image_root="/data")
    assert [video.name for video in dataset.videos] == ["val/a", "val/b", "det/still"]
    assert sum(len(frame.boxes) for frame in dataset.frames()) == 5


@FUZZ
@given(document=mutated_document(VALID, max_edits=4))
def test_mutated_documents(fuzz_file, document):
    read_back(fuzz_file, json.dumps(document).encode())


@FUZZ
@given(data=any_input(json.dumps(VALID, indent=1).encode()))
def test_mutated_bytes(fuzz_file, data):
    read_back(fuzz_file, data)
