"""Fuzzing the annotation importers of ``dsfnet convert``: CVAT for video XML, MOTChallenge text (and its
``seqinfo.ini``), COCO JSON; what they read is then written as CocoVID over a folder of frames."""

from __future__ import annotations

import json
import re
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from dsfnet.data.cocovid import read_cocovid
from dsfnet.data.importers import read_annotations
from dsfnet.data.importers.annotations import ImportedVideo
from dsfnet.data.importers.writer import write_imported
from dsfnet.errors import DsfnetError

from tests.fuzz.fuzzhelpers import (FUZZ, any_input, check_dataset, mutated_bytes, mutated_document, mutated_xml,
                                    read_or_input_error)
from tests.own.ownhelpers import box_element, cvat_xml

FRAMES, WIDTH, HEIGHT = 6, 32, 24
CVAT = cvat_xml([(0, "person", [box_element(0, (1, 2, 10, 12)), box_element(3, (5, 2, 14, 12), occluded=1),
                                box_element(4, (5, 2, 14, 12), outside=1)]),
                 (1, "car", [box_element(2, (0, 0, 31, 23))])], size=FRAMES, source="frames", width=WIDTH,
                height=HEIGHT)
MOT = "1,1,2,3,10,8,1,1,1.0\n2,1,3,3,10,8,1,1,0.4\n2,2,20,10,5,5,0,3,1.0\n6,2,20,10,5,5,1,3,0.9\n"
SEQINFO = "[Sequence]\nname=seq\nimDir=frames\nseqLength=6\nimWidth=32\nimHeight=24\n"
COCO = {"images": [{"id": i + 1, "file_name": f"frames/{i + 1:06d}.jpg", "width": WIDTH, "height": HEIGHT}
                   for i in range(FRAMES)],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 9, 10], "iscrowd": 0,
                         "attributes": {"track_id": 4, "occluded": True}},
                        {"id": 2, "image_id": 3, "category_id": 2, "bbox": [0.5, 0.5, 3, 3], "track_id": 5}],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """``frames/000001.jpg`` .. ``000006.jpg`` beside the annotation files the tests write."""
    root = tmp_path_factory.mktemp("importers")
    (root / "frames").mkdir()
    for index in range(FRAMES):
        image = Image.fromarray(np.full((HEIGHT, WIDTH, 3), 40 * index, np.uint8))
        image.save(root / "frames" / f"{index + 1:06d}.jpg")
    return root


def check_videos(videos: list[ImportedVideo]) -> None:
    """What the writer relies on: integer frames >= 0 and tracks, finite boxes of positive size."""
    for video in videos:
        assert isinstance(video.name, str) and all(isinstance(label, str) for label in video.labels)
        assert video.frames is None or all(type(f) is int and f >= 0 for f in video.frames)
        assert video.size is None or all(type(v) is int and v > 0 for v in video.size)
        for box in video.boxes:
            assert type(box.frame) is int and box.frame >= 0 and type(box.track) is int
            assert isinstance(box.label, str) and len(box.box) == 4 and all(map(math.isfinite, box.box))
            assert box.box[2] >= box.box[0] and box.box[3] >= box.box[1]


def convert(folder, name: str, data: bytes, *others) -> None:
    """Read ``data`` as the annotation file ``name`` and write what it holds as CocoVID: both either succeed
    (and the CocoVID file reads back as a valid dataset) or raise the one-line error naming the file (or one of
    the ``others`` that it reads beside it)."""
    path = folder / name
    path.write_bytes(data)
    videos = read_or_input_error(lambda: read_annotations([path]), path, *others)
    if videos is None:
        return
    check_videos(videos)
    out = folder / "out.json"
    written = read_or_input_error(lambda: write_imported(videos, out, overwrite=True), path, *others)
    if written is not None:
        check_dataset(read_cocovid(out))


def test_valid_files_convert(folder):
    for name, data in (("task.xml", CVAT), ("gt.txt", MOT), ("coco.json", json.dumps(COCO))):
        (folder / "seqinfo.ini").write_text(SEQINFO)
        (folder / name).write_text(data)
        write_imported(read_annotations([folder / name]), folder / "out.json", overwrite=True)
        assert sum(len(frame.boxes) for frame in read_cocovid(folder / "out.json").frames()) >= 2, name


@FUZZ
@given(data=st.one_of(mutated_xml(CVAT), any_input(CVAT.encode())))
def test_cvat(folder, data):
    convert(folder, "task.xml", data)


@FUZZ
@given(data=any_input(MOT.encode()), seqinfo=st.one_of(st.just(SEQINFO.encode()), mutated_bytes(SEQINFO.encode())))
def test_mot(folder, data, seqinfo):
    (folder / "seqinfo.ini").write_bytes(seqinfo)
    convert(folder, "gt.txt", data, folder / "seqinfo.ini")


@FUZZ
@given(data=st.one_of(mutated_document(COCO, max_edits=4).map(lambda d: json.dumps(d).encode()),
                      any_input(json.dumps(COCO, indent=1).encode())))
def test_coco(folder, data):
    convert(folder, "coco.json", data)


def _coco(change) -> str:
    document = json.loads(json.dumps(COCO))
    change(document)
    return json.dumps(document)


#: files the fuzzing found (or its findings led to): each was a traceback (LookupError, ZeroDivisionError,
#: AttributeError, OverflowError in the writer), an endless frame list, or a CocoVID file that does not read back
FOUND = {
    "cvat unknown encoding": ("task.xml", CVAT.replace('encoding="utf-8"', 'encoding="uuf-8"'), "malformed XML"),
    "cvat step 0": ("task.xml", CVAT.replace("<size>6</size>", "").replace(
        "<frame_filter></frame_filter>", "<frame_filter>step=0</frame_filter>"), "the step must be >= 1"),
    "cvat 10^11 frames": ("task.xml", CVAT.replace("<size>6</size>", "<size>123456789012</size>"),
                          "123456789012 frames, more than"),
    "cvat track id past int64": ("task.xml", CVAT.replace('track id="1"', 'track id="99999999999999999999"'),
                                 "the track id must be a 64-bit integer"),
    "cvat negative width": ("task.xml", CVAT.replace(f"<width>{WIDTH}</width>", "<width>-1</width>"),
                            "width must be >= 1"),
    "mot id past int64": ("gt.txt", "1,99999999999999999999,2,3,10,8\n", "the id (column 2) must be a 64-bit"),
    "coco categories null": ("coco.json", _coco(lambda d: d.update(categories=None)), "'categories' must be a list"),
    "coco attributes a list": ("coco.json", _coco(lambda d: d["annotations"][0].update(attributes=[1])),
                               "'attributes' must be an object"),
}


@pytest.mark.parametrize("name, text, message", FOUND.values(), ids=FOUND.keys())
def test_found_files_are_one_line_errors(folder, name, text, message):
    (folder / "seqinfo.ini").write_text(SEQINFO)
    (folder / name).write_text(text)
    with pytest.raises(DsfnetError, match=re.escape(str(folder / name)) + ".*" + re.escape(message)):
        read_annotations([folder / name])


def test_found_boxes_past_the_frame_are_cut_to_it(folder):
    """A COCO box ``[1, 2, 9, 1e308]`` was written as ``Infinity`` (float32), a CocoVID file that did not read."""
    (folder / "coco.json").write_text(_coco(lambda d: d["annotations"][0].update(bbox=[1, 2, 9, 1e308])))
    write_imported(read_annotations([folder / "coco.json"]), folder / "out.json", overwrite=True)
    assert read_cocovid(folder / "out.json").videos[0].frames[0].boxes.tolist() == [[1, 2, 10, HEIGHT - 1]]


def test_found_empty_imdir_means_img1(folder):
    """``imDir=`` (empty) read the sequence folder itself as the frames."""
    (folder / "seqinfo.ini").write_text(SEQINFO.replace("imDir=frames", "imDir="))
    (folder / "gt.txt").write_text(MOT)
    assert read_annotations([folder / "gt.txt"])[0].media == folder / "img1"
