"""CocoVID splits against the config: paths relative to the JSON (or data.root), frame files checked before
the model is built, classes matched by name, and each class-mismatch case."""

from __future__ import annotations

import json
import logging

import pytest

from dsfnet import cli
from dsfnet.config import ConfigError, load_config
from dsfnet.data.classes import VID_CLASS_NAMES
from dsfnet.data.split import read_split

from tests.own.test_importers import frame_folder
from tests.own.ownhelpers import box_element, cvat_xml

CONFIG = "configs/own_videos_light.yaml"


@pytest.fixture
def own_json(tmp_path):
    """``data/own.json`` (categories person, car; a car box in frame 0) over ``frames/`` (4 frames)."""
    frame_folder(tmp_path / "frames", 4)
    (tmp_path / "task.xml").write_text(cvat_xml([(0, "car", [box_element(0, (1, 1, 9, 9), outside=0),
                                                              box_element(1, (1, 1, 9, 9), outside=1)])],
                                                size=4, source="frames", labels=("person", "car")))
    assert cli.main(["convert", str(tmp_path / "task.xml"), "--out", str(tmp_path / "data" / "own.json")]) == 0
    return tmp_path / "data" / "own.json"


def data_config(own_json, *overrides):
    return load_config(CONFIG, [f"data.train_json={own_json}", f"data.val_json={own_json}", *overrides]).data


def test_paths_resolve_against_the_json_folder_unless_data_root(own_json, tmp_path):
    split = read_split(data_config(own_json, "data.class_names=[person,car]"), "train")
    assert split.frames()[0].image_path == str(tmp_path / "frames" / "000001.jpg")
    elsewhere = tmp_path / "elsewhere"
    frame_folder(elsewhere / "frames", 4)  # file_name is ../frames/...: against data.root/sub
    (elsewhere / "sub").mkdir()
    split = read_split(data_config(own_json, "data.class_names=[person,car]", f"data.root={elsewhere / 'sub'}"),
                       "train")
    assert split.frames()[0].image_path == str(elsewhere / "frames" / "000001.jpg")


def test_missing_frames_are_one_line_before_the_model_is_built(own_json, tmp_path, capsys):
    for name in ("000002.jpg", "000004.jpg"):
        (tmp_path / "frames" / name).unlink()
    code = cli.main(["train", CONFIG, "--out", str(tmp_path / "run"), "--opts", f"data.train_json={own_json}",
                     "data.class_names=[person,car]", "train.eval_interval=0"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert f"{own_json} (data.train_json): frame file not found: {tmp_path / 'frames' / '000002.jpg'} (2 of 4" in error
    assert not (tmp_path / "run").exists()


def test_classes_match_by_name_in_any_order_and_num_classes_follows(own_json):
    data = data_config(own_json, "data.class_names=[car,person]")
    split = read_split(data, "train")
    assert split.class_names == ("car", "person")
    assert split.frames()[0].labels.tolist() == [1]  # car: category 2 in the file, class 1 of the config
    assert load_config(CONFIG, ["data.class_names=[car,person,dog]"]).model.num_classes == 3


def test_a_category_the_config_lacks_is_an_error(own_json):
    with pytest.raises(ValueError, match=f"{own_json} \\(data.train_json\\): category 'person' is not in "
                                         "data.class_names \\(car\\)"):
        read_split(data_config(own_json, "data.class_names=[car]"), "train")


def test_a_config_class_the_data_lacks_errs_in_training_and_warns_in_validation(own_json, caplog):
    data = data_config(own_json, "data.class_names=[person,car,dog]")
    with pytest.raises(ValueError, match="data.train_json\\): has no category 'dog' of data.class_names"):
        read_split(data, "train")
    with caplog.at_level(logging.WARNING):
        assert read_split(data, "val").class_names == ("person", "car", "dog")
    assert "data.val_json): no category 'dog' of data.class_names" in caplog.text


def test_without_class_names_categories_are_matched_to_the_vid_classes_by_name(own_json, tmp_path):
    """``data.class_names: null`` means the model's VID classes: the file's categories are looked up there by
    name (never taken by position), and a non-VID category ('person') asks for ``data.class_names``."""
    with pytest.raises(ValueError, match="category 'person' is not an ImageNet VID class, the default class list; "
                                         "set data.class_names"):
        read_split(data_config(own_json, "data.class_names=null"), "train")
    document = json.loads(own_json.read_text())
    document["categories"] = [{"id": 1, "name": "zebra"}, {"id": 2, "name": "car"}]
    vid_named = tmp_path / "data" / "vid_named.json"
    vid_named.write_text(json.dumps(document))
    split = read_split(data_config(vid_named, "data.class_names=null"), "val")
    assert split.frames()[0].labels.tolist() == [VID_CLASS_NAMES.index("car") + 1]


def test_a_class_without_boxes_warns(own_json, caplog):
    with caplog.at_level(logging.WARNING):
        read_split(data_config(own_json, "data.class_names=[person,car]"), "train")
    assert "no boxes of class 'person'" in caplog.text


@pytest.mark.parametrize("overrides, message", [
    (["data.class_names=[a,b]", "model.num_classes=3"], "data.class_names has 2 entries but model.num_classes is 3"),
    (["data.class_names=[a,a]"], "data.class_names lists a class twice"),
])
def test_inconsistent_class_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIG, overrides)


def test_ground_truth_file_written_by_convert_is_read_back_relative_to_itself(own_json, tmp_path):
    document = json.loads(own_json.read_text())
    assert document["images"][0]["file_name"] == "../frames/000001.jpg"
