"""CocoVID JSON: VID layout -> JSON -> reader round trip, 'dsfnet convert', mmtracking-style input, errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from conftest import SNIPPET
from dsfnet.commands import convert as convert_command
from dsfnet.data.cocovid import read_cocovid, write_cocovid
from dsfnet.data.vid import read_vid_split


def _assert_same(a, b):
    assert a.class_names == b.class_names
    assert [(v.name, v.is_still_image, len(v)) for v in a.videos] == [(v.name, v.is_still_image, len(v))
                                                                      for v in b.videos]
    for fa, fb in zip(a.frames(), b.frames()):
        assert (fa.video, fa.frame_index, fa.image_path, fa.width, fa.height) == \
            (fb.video, fb.frame_index, fb.image_path, fb.width, fb.height)
        np.testing.assert_array_equal(fa.boxes, fb.boxes)
        assert fb.boxes.dtype == np.float32
        for name in ("labels", "track_ids", "occluded", "degraded"):
            np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
            assert getattr(fa, name).dtype == getattr(fb, name).dtype


@pytest.mark.parametrize("split", ["VID_train_15frames", "DET_train_30classes", "VID_val_videos"])
def test_round_trip_hand_written_tree(vid_tree, tmp_path, split):
    original = read_vid_split(vid_tree, split, cache_dir=tmp_path / "cache")
    path = tmp_path / "out" / "ann.json"
    write_cocovid(original, path)
    back = read_cocovid(path)
    _assert_same(original, back)
    assert back.key_frames == sorted(set(original.key_frames))  # a repeated DET line is one flagged image


def test_written_json_follows_mmtracking(vid_tree, tmp_path):
    path = tmp_path / "ann.json"
    write_cocovid(read_vid_split(vid_tree, "VID_train_15frames", cache_dir=tmp_path), path, image_root=vid_tree)
    document = json.loads(path.read_text())
    assert document["categories"][0] == {"id": 1, "name": "airplane", "encode_name": "n02691156"}
    assert document["videos"] == [{"id": 1, "name": SNIPPET}]
    assert document["images"][2] == {"id": 3, "video_id": 1, "frame_id": 2, "width": 100, "height": 80,
                                     "file_name": f"Data/VID/{SNIPPET}/000002.JPEG", "is_vid_train_frame": True}
    assert document["images"][1]["is_vid_train_frame"] is False
    first = document["annotations"][0]
    assert (first["bbox"], first["category_id"], first["instance_id"], first["image_id"]) == \
        ([10, 5, 89, 35], 1, 0, 1)  # [x1, y1, x2 - x1, y2 - y1] of the clipped box (10, 5, 99, 40)
    assert [a["instance_id"] for a in document["annotations"]] == [0, 3, 0]
    assert read_cocovid(path, image_root=vid_tree).videos[0].frames[0].image_path == \
        str(vid_tree / "Data" / "VID" / SNIPPET / "000000.JPEG")


def test_convert_command_on_synthetic_data(synth_root, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    convert_command.add_arguments(parser)
    out = tmp_path / "json" / "val.json"
    assert convert_command.run(parser.parse_args([str(synth_root), "--split", "VID_val_videos",
                                                  "--out", str(out)])) == 0
    assert "3 videos" in capsys.readouterr().out
    _assert_same(read_vid_split(synth_root, "VID_val_videos"), read_cocovid(out))
    assert all(action.help for action in parser._actions[1:])


def test_convert_of_a_vid_split_keeps_the_classes_given(synth_root, tmp_path, capsys):
    """``--classes`` on a VID split: only those classes' boxes, labelled in the order given; a class the data
    does not have is a one-line error naming the option."""
    parser = argparse.ArgumentParser()
    convert_command.add_arguments(parser)
    out = tmp_path / "val.json"
    full = read_vid_split(synth_root, "VID_val_videos")
    assert convert_command.run(parser.parse_args([str(synth_root), "--split", "VID_val_videos", "--classes",
                                                  "zebra,car", "--out", str(out)])) == 0
    kept = read_cocovid(out)
    assert kept.class_names == ("zebra", "car")
    for before, after in zip(full.frames(), kept.frames()):
        names = [full.class_names[label - 1] for label in before.labels]
        chosen = [i for i, name in enumerate(names) if name in ("zebra", "car")]
        assert after.labels.tolist() == [("zebra", "car").index(names[i]) + 1 for i in chosen]
        np.testing.assert_allclose(after.boxes, before.boxes[chosen])
        assert after.track_ids.tolist() == before.track_ids[chosen].tolist()
    kept_boxes = sum(len(frame.boxes) for frame in kept.frames())
    left_out = sum(len(frame.boxes) for frame in full.frames()) - kept_boxes
    assert kept_boxes > 0 and left_out > 0
    assert f"left out {left_out} boxes" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--classes: class 'person' is not a class of the data"):
        convert_command.run(parser.parse_args([str(synth_root), "--split", "VID_val_videos", "--classes", "person",
                                               "--out", str(tmp_path / "other.json")]))


def test_reads_mmtracking_style_file(tmp_path):
    document = {
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "boat"}],
        "videos": [{"id": 10, "name": "clipA"}],
        "images": [
            {"id": 5, "video_id": 10, "frame_id": 1, "file_name": "clipA/1.jpg", "width": 50, "height": 40},
            {"id": 4, "video_id": 10, "frame_id": 0, "file_name": "clipA/0.jpg", "width": 50, "height": 40},
            {"id": 9, "video_id": -1, "frame_id": -1, "file_name": "det/img.jpg", "width": 30, "height": 20},
        ],
        "annotations": [
            {"id": 1, "image_id": 4, "video_id": 10, "category_id": 7, "instance_id": 1001, "bbox": [2, 3, 10, 5]},
            {"id": 2, "image_id": 5, "video_id": 10, "category_id": 7, "instance_id": 1001, "bbox": [4, 3, 50, 5]},
            {"id": 3, "image_id": 5, "video_id": 10, "category_id": 3, "instance_id": 1002, "bbox": [0, 0, 1, 1],
             "iscrowd": True},
            {"id": 4, "image_id": 9, "video_id": -1, "category_id": 3, "instance_id": -1, "bbox": [1, 2, 3, 4],
             "occluded": -1},
        ],
    }
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(document))
    dataset = read_cocovid(path, image_root="/data")
    assert dataset.class_names == ("boat", "cat")  # ordered by category id
    clip, still = dataset.videos
    assert (clip.name, still.name, still.is_still_image) == ("clipA", "det/img", True)
    assert [f.frame_index for f in clip.frames] == [0, 1]  # sorted by frame_id
    assert clip.frames[0].image_path == "/data/clipA/0.jpg"
    np.testing.assert_array_equal(clip.frames[0].boxes, [[2, 3, 12, 8]])
    np.testing.assert_array_equal(clip.frames[1].boxes, [[4, 3, 49, 8]])  # clipped to width - 1; crowd dropped
    assert clip.frames[1].labels.tolist() == [2] and clip.frames[1].track_ids.tolist() == [1001]
    assert still.frames[0].labels.tolist() == [1] and still.frames[0].track_ids.tolist() == [0]
    assert still.frames[0].occluded.tolist() == [False]
    assert dataset.key_frames == [(0, 0), (0, 1), (1, 0)]  # no is_vid_train_frame field: every frame


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        read_cocovid(tmp_path / "nothing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        read_cocovid(bad)
    bad.write_text(json.dumps({"categories": [{"id": 1, "name": "a"}], "videos": [],
                               "images": [{"id": 1, "file_name": "x.jpg", "width": 4, "height": 4}],
                               "annotations": [{"id": 8, "image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1]}]}))
    with pytest.raises(ValueError, match="bad.json: annotation 8 has unknown category_id 2"):
        read_cocovid(bad)
