"""The VID/DET reader on a hand-written tree: every box, label, track id; split formats; cache; bad input."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from conftest import DET_DOG, DET_EMPTY, SNIPPET, VAL_A, VAL_B, frame_xml, write
from dsfnet.data import vid
from dsfnet.data.vid import read_vid_split

AIRPLANE, BIRD, CAR, DOG, ZEBRA = 1, 5, 7, 9, 30


def test_vid_train_split_boxes_labels_tracks(vid_tree, tmp_path):
    dataset = read_vid_split(vid_tree, "VID_train_15frames", cache_dir=tmp_path / "cache")
    assert [v.name for v in dataset.videos] == [SNIPPET]
    video = dataset.videos[0]
    assert not video.is_still_image
    assert [f.frame_index for f in video.frames] == [0, 1, 2]
    f0, f1, f2 = video.frames
    assert (f0.width, f0.height) == (100, 80)
    # xmax == width is clipped to width - 1; the second object's tags were in unusual order.
    np.testing.assert_array_equal(f0.boxes, [[10, 5, 99, 40], [30, 20, 70, 60]])
    np.testing.assert_array_equal(f0.labels, [AIRPLANE, ZEBRA])
    np.testing.assert_array_equal(f0.track_ids, [0, 3])
    np.testing.assert_array_equal(f0.occluded, [False, True])
    assert f1.boxes.shape == (0, 4) and f1.labels.shape == (0,) and f1.track_ids.shape == (0,)
    np.testing.assert_array_equal(f2.boxes, [[12, 6, 50, 79]])  # ymax == height clipped to 79
    np.testing.assert_array_equal(f2.labels, [AIRPLANE])
    np.testing.assert_array_equal(f2.degraded, [True])
    assert f0.boxes.dtype == np.float32 and f0.labels.dtype == np.int64 and f0.track_ids.dtype == np.int64
    assert f2.image_path == os.path.join(vid_tree, "Data", "VID", SNIPPET, "000002.JPEG")
    assert dataset.key_frames == [(0, 0), (0, 2)]
    assert len(dataset.class_names) == 30


def test_det_split_duplicates_and_foreign_classes(vid_tree, tmp_path):
    dataset = read_vid_split(vid_tree, "DET_train_30classes", cache_dir=tmp_path / "cache")
    assert [v.name for v in dataset.videos] == [DET_DOG, DET_EMPTY]
    assert all(v.is_still_image and len(v) == 1 for v in dataset.videos)
    dog = dataset.videos[0].frames[0]
    np.testing.assert_array_equal(dog.boxes, [[1, 2, 30, 40], [40, 10, 59, 20]])  # person dropped, bird clipped
    np.testing.assert_array_equal(dog.labels, [DOG, BIRD])
    np.testing.assert_array_equal(dog.track_ids, [0, 1])
    assert dog.image_path == os.path.join(vid_tree, "Data", "DET", DET_DOG + ".JPEG")
    assert dataset.videos[1].frames[0].boxes.shape == (0, 4)
    assert dataset.key_frames == [(0, 0), (1, 0), (0, 0)]  # the duplicated line is sampled twice


@pytest.mark.parametrize("split", ["VID_val_videos", "VID_val_frames"])
def test_val_splits(vid_tree, tmp_path, split):
    dataset = read_vid_split(vid_tree, split, cache_dir=tmp_path / "cache")
    assert [(v.name, len(v)) for v in dataset.videos] == [(VAL_A, 2), (VAL_B, 1)]
    frames = dataset.frames()
    np.testing.assert_array_equal(np.concatenate([f.boxes for f in frames]), [[0, 1, 9, 9], [1, 1, 10, 9],
                                                                               [0, 1, 9, 9]])
    assert [f.labels.tolist() for f in frames] == [[CAR]] * 3
    assert [f.track_ids.tolist() for f in frames] == [[0], [1], [0]]
    assert dataset.key_frames == [(0, 0), (0, 1), (1, 0)]


def test_cache_is_used_and_invalidated(vid_tree, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    read_vid_split(vid_tree, "VID_train_15frames", cache_dir=cache)
    assert len(list(cache.glob("*.pkl"))) == 1
    real_parse = vid.parse_annotation

    def no_parsing(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(vid, "parse_annotation", no_parsing)
    again = read_vid_split(vid_tree, "VID_train_15frames", cache_dir=cache)
    np.testing.assert_array_equal(again.videos[0].frames[0].boxes, [[10, 5, 99, 40], [30, 20, 70, 60]])

    # Replacing an annotation (how tools save files) changes its folder and rebuilds the index.
    monkeypatch.setattr(vid, "parse_annotation", real_parse)
    folder = vid_tree / "Annotations" / "VID" / SNIPPET
    write(folder / "new.tmp", frame_xml(100, 80, """<object><trackid>5</trackid><name>n02958343</name>
        <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"""))
    os.replace(folder / "new.tmp", folder / "000001.xml")
    os.utime(folder, ns=(1, 1))  # timestamps are coarse (jiffies): make the change visible whatever the clock
    edited = read_vid_split(vid_tree, "VID_train_15frames", cache_dir=cache)
    np.testing.assert_array_equal(edited.videos[0].frames[1].boxes, [[1, 2, 3, 4]])

    # An XML rewritten in place is caught with check_files=True.
    write(folder / "000001.xml", frame_xml(100, 80))
    os.utime(folder / "000001.xml", ns=(2, 2))
    assert len(read_vid_split(vid_tree, "VID_train_15frames", cache_dir=cache, check_files=True)
               .videos[0].frames[1].boxes) == 0

    # Editing the split file rebuilds it too.
    write(vid_tree / "ImageSets" / "VID_train_15frames.txt", f"{SNIPPET} 1 1 3\n")
    assert read_vid_split(vid_tree, "VID_train_15frames", cache_dir=cache).key_frames == [(0, 1)]


def test_default_cache_dir_and_read_only_fallback(vid_tree, tmp_path, monkeypatch, caplog):
    read_vid_split(vid_tree, "VID_val_videos")
    assert list((vid_tree / ".dsfnet_cache").glob("VID_val_videos*.pkl"))

    def fail(*args):
        raise PermissionError("read-only")

    monkeypatch.setattr(vid, "atomic_write_bytes", fail)
    with caplog.at_level(logging.WARNING):
        dataset = read_vid_split(vid_tree, "VID_val_frames", cache_dir=tmp_path / "ro")
    assert len(dataset.videos) == 2 and "could not write the index cache" in caplog.text


# ------------------------------------------------------------------------------------------------ bad input


def _expect(vid_tree, tmp_path, split, error, *fragments):
    with pytest.raises(error) as info:
        read_vid_split(vid_tree, split, cache_dir=tmp_path / "cache")
    for fragment in fragments:
        assert fragment in str(info.value)
    return info.value


def test_missing_snippet_names_split_line(vid_tree, tmp_path):
    split = write(vid_tree / "ImageSets" / "VID_train_15frames.txt", f"{SNIPPET} 1 0 3\ntrain/X/missing 1 0 5\n")
    _expect(vid_tree, tmp_path, "VID_train_15frames", FileNotFoundError, f"{split} line 2", "train/X/missing")


def test_missing_xml_names_file_and_line(vid_tree, tmp_path):
    (vid_tree / "Annotations" / "VID" / SNIPPET / "000001.xml").unlink()
    _expect(vid_tree, tmp_path, "VID_train_15frames", FileNotFoundError, "000001.xml", "line 1")


def test_malformed_xml_names_file_and_line(vid_tree, tmp_path):
    bad = write(vid_tree / "Annotations" / "VID" / SNIPPET / "000002.xml", "<annotation><size><width>4")
    _expect(vid_tree, tmp_path, "VID_train_15frames", ValueError, str(bad), "malformed XML", "line 1")


def test_unknown_wnid_names_file(vid_tree, tmp_path):
    bad = write(vid_tree / "Annotations" / "VID" / VAL_B / "000000.xml", frame_xml(32, 24, """
        <object><trackid>0</trackid><name>n99999999</name>
        <bndbox><xmin>0</xmin><ymin>0</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object>"""))
    _expect(vid_tree, tmp_path, "VID_val_videos", ValueError, str(bad), "n99999999", "line 2")


def test_malformed_split_lines(vid_tree, tmp_path):
    split = write(vid_tree / "ImageSets" / "VID_train_15frames.txt", f"{SNIPPET} 1 zero 3\n")
    _expect(vid_tree, tmp_path, "VID_train_15frames", ValueError, f"{split} line 1", "integer")
    write(split, f"{SNIPPET} 1 7 3\n")
    _expect(vid_tree, tmp_path, "VID_train_15frames", ValueError, "frame 7 outside 0..2")
    write(vid_tree / "ImageSets" / "VID_val_videos.txt", f"{VAL_A} 1 0 2\n{VAL_B} 4 0 1\n")
    _expect(vid_tree, tmp_path, "VID_val_videos", ValueError, "line 2", "global start 4, expected 3")
    _expect(vid_tree, tmp_path, "no_such_split", FileNotFoundError, "ImageSets/no_such_split.txt")


def test_skip_bad_logs_and_skips(vid_tree, tmp_path, caplog):
    write(vid_tree / "Annotations" / "VID" / VAL_A / "000001.xml", "not xml")
    write(vid_tree / "ImageSets" / "VID_val_videos.txt", f"{VAL_A} 1 0 2\nval/gone 3 0 4\n{VAL_B} 7 0 1\n")
    with caplog.at_level(logging.WARNING, logger="dsfnet.data.vid"):
        dataset = read_vid_split(vid_tree, "VID_val_videos", cache_dir=tmp_path / "cache", skip_bad=True)
    assert [v.name for v in dataset.videos] == [VAL_B]
    assert "000001.xml" in caplog.text and "val/gone" in caplog.text and "line 2" in caplog.text
    # The warnings are repeated when the cached index is used.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dsfnet.data.vid"):
        read_vid_split(vid_tree, "VID_val_videos", cache_dir=tmp_path / "cache", skip_bad=True)
    assert "val/gone" in caplog.text
