"""Fuzzing the CocoVID JSON reader (``data.format: cocovid``, and the ground truth of ``dsfnet eval``)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given

from dsfnet.data.cocovid import cocovid_document, read_cocovid
from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord
from dsfnet.errors import InputError

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


def _edited(change):
    document = json.loads(json.dumps(VALID))
    change(document)
    return document


#: documents the fuzzing found (AttributeError, KeyError, TypeError before), and a still-image video of two images
#: (each would have been frame 0 of its video)
FOUND = {
    "category not an object": (lambda d: d["categories"].append(5), "'categories' must be a list of objects"),
    "category without name": (lambda d: d["categories"][0].pop("name"), "category 1 has no 'name'"),
    "images null": (lambda d: d.update(images=None), "'images' must be a list of objects"),
    "unhashable image id": (lambda d: d["images"][0].update(id=[1]), "images[0]: 'id' must be an integer"),
    "unhashable video_id": (lambda d: d["images"][0].update(video_id=[1]), "image 1: 'video_id' must be an integer"),
    "width null": (lambda d: d["images"][0].update(width=None), "image 1: 'width' must be an integer >= 1"),
    "frame_id a string": (lambda d: d["images"][1].update(frame_id="1"), "'frame_id' must be an integer >= 0"),
    "instance_id past int64": (lambda d: d["annotations"][0].update(instance_id=2 ** 64),
                               "'instance_id' must be a 64-bit integer"),
    "still image of two images": (lambda d: d["images"][2].update(video_id=3, frame_id=1),
                                  "video 3 is a still image (is_still_image) but has 2 images"),
}


@pytest.mark.parametrize("change, message", FOUND.values(), ids=FOUND.keys())
def test_found_documents_are_one_line_errors(fuzz_file, change, message):
    fuzz_file.write_text(json.dumps(_edited(change)))
    with pytest.raises(InputError, match=re.escape(f"{fuzz_file}: ") + ".*" + re.escape(message)):
        read_cocovid(fuzz_file, image_root="/data")
