"""dsfnet convert: CVAT for video 1.1, MOTChallenge and COCO files built by hand, with known boxes; bad input is a
one-line error naming the file and element / line, and leaves nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsfnet import cli
from dsfnet.data.cocovid import read_cocovid

from tests.own.ownhelpers import HEIGHT, WIDTH, box_element, cvat_xml, squares_cvat, write_squares_video


def frame_folder(folder: Path, count: int, width: int = WIDTH, height: int = HEIGHT) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(np.full((height, width, 3), index * 5, np.uint8)).save(folder / f"{index + 1:06d}.jpg")
    return folder


def boxes_of(dataset, frame_index: int) -> dict[int, tuple]:
    """track id -> (class name, box, occluded) in ``frame_index`` of the only video."""
    frame = next(f for f in dataset.videos[0].frames if f.frame_index == frame_index)
    return {int(t): (dataset.class_names[int(label) - 1], tuple(round(v, 3) for v in box), bool(occ))
            for t, label, box, occ in zip(frame.track_ids, frame.labels, frame.boxes.tolist(), frame.flags("occluded"))}


def convert(*argv) -> int:
    return cli.main(["convert", *map(str, argv)])


# ------------------------------------------------------------------------------------------------------ CVAT
def real_looking_cvat(path: Path, source: str) -> Path:
    """Three tracks over 20 frames: 0 leaves (outside) at 10; 1 enters at 5, occluded at 8-11, leaves at 15 and
    comes back at 17 to the end; 2 (a car) holds one box from 12 to the end (no further key frame)."""
    person0 = [box_element(0, (0, 0, 10, 10)), box_element(4, (8, 4, 18, 14)), box_element(10, (8, 4, 18, 14), 1)]
    person1 = [box_element(5, (40, 10, 60, 30)), box_element(8, (46, 10, 66, 30), occluded=1),
               box_element(12, (50, 10, 70, 30)), box_element(15, (50, 10, 70, 30), outside=1),
               box_element(17, (20.5, 20.25, 30.5, 40.75))]
    car = [box_element(12, (60, 40, 90, 60))]
    path.write_text(cvat_xml([(0, "person", person0), (1, "person", person1), (2, "car", car)], size=20,
                             source=source, labels=("person", "car", "bicycle")))
    return path


def test_cvat_tracks_enter_leave_interpolate_and_hold(tmp_path):
    frame_folder(tmp_path / "frames", 20)
    real_looking_cvat(tmp_path / "task.xml", "frames")
    assert convert(tmp_path / "task.xml", "--out", tmp_path / "out" / "own.json") == 0
    dataset = read_cocovid(tmp_path / "out" / "own.json")
    assert dataset.class_names == ("person", "car", "bicycle")  # declared labels kept, also without boxes
    assert [f.frame_index for f in dataset.videos[0].frames] == list(range(20))
    assert boxes_of(dataset, 0) == {0: ("person", (0, 0, 10, 10), False)}
    assert boxes_of(dataset, 2) == {0: ("person", (4, 2, 14, 12), False)}  # interpolated half way
    assert boxes_of(dataset, 9)[0] == ("person", (8, 4, 18, 14), False)  # held until the outside box
    assert 0 not in boxes_of(dataset, 10) and 1 not in boxes_of(dataset, 4)
    assert boxes_of(dataset, 6)[1] == ("person", (42, 10, 62, 30), False)
    assert boxes_of(dataset, 9)[1] == ("person", (47, 10, 67, 30), True)  # occluded from its key box on
    assert boxes_of(dataset, 14)[1] == ("person", (50, 10, 70, 30), False)  # held before the outside box
    assert set(boxes_of(dataset, 15)) == set(boxes_of(dataset, 16)) == {2}
    assert boxes_of(dataset, 19) == {1: ("person", (20.5, 20.25, 30.5, 40.75), False),
                                     2: ("car", (60, 40, 90, 60), False)}
    written = json.loads((tmp_path / "out" / "own.json").read_text())
    assert written["images"][0]["file_name"] == "../frames/000001.jpg"  # relative to the JSON's folder
    assert {a["bbox"][2] for a in written["annotations"] if a["category_id"] == 2} == {30}  # the tool's box


def test_cvat_video_frames_are_extracted_and_named_like_detect(tmp_path):
    write_squares_video(tmp_path / "clip.avi", 12)
    squares_cvat(tmp_path / "clip.xml", "clip.avi", 12)
    assert convert(tmp_path / "clip.xml", "--out", tmp_path / "clip.json") == 0
    dataset = read_cocovid(tmp_path / "clip.json")
    assert dataset.videos[0].name == "clip.avi"
    assert sorted(p.name for p in (tmp_path / "clip_frames" / "clip.avi").iterdir())[-1] == "000011.jpg"
    assert boxes_of(dataset, 7)[0] == ("person", (18, 8, 38, 28), False)
    assert convert(tmp_path / "clip.xml", "--out", tmp_path / "clip.json") == 2  # exists: --overwrite
    assert convert(tmp_path / "clip.xml", "--out", tmp_path / "clip.json", "--overwrite",
                   "--classes", "car") == 0
    assert read_cocovid(tmp_path / "clip.json").class_names == ("car",)


def test_several_inputs_and_media_folder(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    for name in ("a", "b"):
        write_squares_video(media / f"{name}.avi", 6)
        squares_cvat(tmp_path / f"{name}.xml", f"elsewhere/{name}.avi", 6)
    assert convert(tmp_path / "a.xml", tmp_path / "b.xml", "--media", media, "--out", tmp_path / "ab.json") == 0
    assert [v.name for v in read_cocovid(tmp_path / "ab.json").videos] == ["a.avi", "b.avi"]


# ------------------------------------------------------------------------------------------------------ MOT
def mot_sequence(root: Path, rows: list[str], frames: int = 5) -> Path:
    frame_folder(root / "img1", frames)
    (root / "gt").mkdir()
    (root / "seqinfo.ini").write_text(f"[Sequence]\nname=SEQ\nimDir=img1\nseqLength={frames}\nimWidth={WIDTH}\n"
                                      f"imHeight={HEIGHT}\n")
    (root / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return root / "gt" / "gt.txt"


def test_mot_conf_class_and_visibility(tmp_path):
    gt = mot_sequence(tmp_path / "SEQ-01", ["1,1,11,21,10,20,1,1,1.0", "2,1,13,21,10,20,1,1,0.3",
                                            "2,2,51,11,8,8,0,1,1.0", "3,3,31,31,20,10,1,3,0.8"])
    assert convert(gt, "--out", tmp_path / "mot.json") == 0
    dataset = read_cocovid(tmp_path / "mot.json")
    assert dataset.class_names == ("pedestrian", "car") and len(dataset.videos[0]) == 5
    assert boxes_of(dataset, 0) == {1: ("pedestrian", (10, 20, 20, 40), False)}  # 1-based pixels and frames
    assert boxes_of(dataset, 1) == {1: ("pedestrian", (12, 20, 22, 40), True)}  # conf 0 row ignored
    assert boxes_of(dataset, 2) == {3: ("car", (30, 30, 50, 40), False)}
    assert boxes_of(dataset, 4) == {}


def test_mot_min_visibility_leaves_out_rows_below_it_and_is_refused_for_other_formats(tmp_path, capsys):
    gt = mot_sequence(tmp_path / "SEQ-01", ["1,1,11,21,10,20,1,1,1.0", "2,1,13,21,10,20,1,1,0.3",
                                            "3,1,15,21,10,20,1,1,0.5"])
    assert convert(gt, "--out", tmp_path / "mot.json", "--min-visibility", "0.5") == 0
    dataset = read_cocovid(tmp_path / "mot.json")
    assert [len(boxes_of(dataset, frame)) for frame in range(3)] == [1, 0, 1]
    cvat = cvat_with(tmp_path, [(0, "person", [box_element(0, (1, 1, 5, 5))])])
    assert convert(cvat, "--out", tmp_path / "cvat.json", "--min-visibility", "0.5") == 2
    assert f"--min-visibility: applies to MOTChallenge gt.txt files only ({cvat} is cvat)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert(gt, "--out", tmp_path / "bad.json", "--min-visibility", "1.5")
    assert "--min-visibility: expected a number in 0..1, got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "cvat.json").exists() and not (tmp_path / "bad.json").exists()


# ------------------------------------------------------------------------------------------------------ COCO
def test_coco_per_image_json(tmp_path):
    frame_folder(tmp_path / "images" / "walk", 3)
    document = {
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "images": [{"id": i + 10, "file_name": f"walk/{i + 1:06d}.jpg", "width": WIDTH, "height": HEIGHT}
                   for i in (2, 0, 1)],
        "annotations": [{"id": 1, "image_id": 10, "category_id": 3, "bbox": [1, 2, 10, 20],
                         "attributes": {"track_id": 5, "occluded": True}},
                        {"id": 2, "image_id": 12, "category_id": 7, "bbox": [5, 5, 5, 5], "track_id": 9},
                        {"id": 3, "image_id": 11, "category_id": 7, "bbox": [0, 0, 9, 9], "iscrowd": 1}]}
    (tmp_path / "images" / "instances.json").write_text(json.dumps(document))
    assert convert(tmp_path / "images" / "instances.json", "--out", tmp_path / "coco.json") == 0
    dataset = read_cocovid(tmp_path / "coco.json")
    assert dataset.videos[0].name == "walk" and dataset.class_names == ("dog", "cat")
    assert boxes_of(dataset, 0) == {5: ("cat", (1, 2, 11, 22), True)}
    assert boxes_of(dataset, 1) == {} and boxes_of(dataset, 2) == {9: ("dog", (5, 5, 10, 10), False)}


# ------------------------------------------------------------------------------------------------ bad input
def cvat_with(tmp_path, tracks, size=6, source="frames") -> Path:
    if not (tmp_path / "frames").exists():
        frame_folder(tmp_path / "frames", 6)
    path = tmp_path / "bad.xml"
    path.write_text(cvat_xml(tracks, size=size, source=source))
    return path


BAD_CVAT = [
    ([(0, "person", [box_element(1, (5, 5, 2, 9))])], "<track id=0> <box frame=1>: negative box size"),
    ([(0, "person", [box_element(1, (200, 5, 210, 9))])], "<track id=0> <box frame=1>: box [200.0, 5.0, 210.0, "
                                                          "9.0] lies outside the 96x64 frame"),
    ([(0, "person", [box_element(1, (1, 1, 5, 5))]), (0, "car", [box_element(2, (1, 1, 5, 5))])],
     "<track id=0> <box frame=2>: track 0 is labelled 'car' here but 'person'"),
    ([(0, "person", [box_element(9, (1, 1, 5, 5))])], "<track id=0> <box frame=9>: frame outside the task's frames"),
    ([(0, "person", ['<box frame="1" xtl="a" ytl="1" xbr="2" ybr="3"/>'])], "<box frame=1>: xtl must be a number"),
]


@pytest.mark.parametrize("tracks, message", BAD_CVAT)
def test_bad_cvat_is_one_line_naming_the_element_and_writes_nothing(tmp_path, capsys, tracks, message):
    path = cvat_with(tmp_path, tracks)
    assert convert(path, "--out", tmp_path / "out.json") == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and f"{path}: " in error and message in error, error
    assert not (tmp_path / "out.json").exists()


def test_malformed_xml_names_the_line(tmp_path, capsys):
    path = tmp_path / "broken.xml"
    path.write_text('<?xml version="1.0"?>\n<annotations>\n<track id="0" label="a">\n</annotations>\n')
    assert convert(path, "--out", tmp_path / "out.json") == 2
    assert f"{path}:4: malformed XML" in capsys.readouterr().err


def test_frame_past_the_videos_end_and_undecodable_video_leave_nothing(tmp_path, capsys):
    write_squares_video(tmp_path / "short.avi", 4)
    squares_cvat(tmp_path / "long.xml", "short.avi", 8)
    assert convert(tmp_path / "long.xml", "--out", tmp_path / "out.json") == 2
    assert "long.xml: covers frame 4, past the end of" in capsys.readouterr().err
    (tmp_path / "junk.avi").write_bytes(b"\x00not a video" * 50)
    squares_cvat(tmp_path / "junk.xml", "junk.avi", 4)
    assert convert(tmp_path / "junk.xml", "--out", tmp_path / "out.json") == 2
    assert "junk.avi: not a video file FFmpeg can read" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.avi", "junk.xml", "long.xml", "short.avi"]


BAD_MOT = [
    ("1,1,10,10,5", "expected 'frame, id, left, top, width, height"),
    ("1,1,10,10,-5,5,1,1,1", "negative box size"),
    ("x,1,10,10,5,5,1,1,1", "the frame (column 1) must be an integer"),
    ("0,1,10,10,5,5,1,1,1", "frame numbers start at 1"),
    ("9,1,10,10,5,5,1,1,1", "frame 8 is past the end of"),
    ("2,1,10,10,5,5,1,3,1", "track 1 is labelled 'car' here but 'pedestrian'"),
    ("2,2,500,10,5,5,1,1,1", "lies outside the 96x64 frame"),
]


@pytest.mark.parametrize("row, message", BAD_MOT)
def test_bad_gt_txt_is_one_line_naming_the_line(tmp_path, capsys, row, message):
    gt = mot_sequence(tmp_path / "SEQ", ["1,1,10,10,5,5,1,1,1", row], frames=8)
    (tmp_path / "SEQ" / "seqinfo.ini").unlink()  # the image folder decides the length: 8 frames
    (tmp_path / "SEQ" / "img1" / "000008.jpg").unlink()
    assert convert(gt, "--out", tmp_path / "out.json") == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and f"{gt}:2: " in error and message in error, error
    assert not (tmp_path / "out.json").exists()
