"""The four recipes of docs/EXTENDING.md: a toy backbone, dataset reader, post-processor and metric, each
registered from outside the package (the ``toy_*`` modules beside this file) and used through the API or CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
import torch

from dsfnet.cli import main
from dsfnet.config import ConfigError
from dsfnet.data.cocovid import write_cocovid
from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord
from dsfnet.data.split import read_split
from dsfnet.evaluation.detections import Detections, write_jsonl
from dsfnet.models.build import build_model
from dsfnet.registry import BACKBONES, DATASET_READERS, METRICS, POSTPROCESSORS


def test_a_registered_backbone_trains_and_detects(registered, tiny_config):
    with pytest.raises(ConfigError, match="model.backbone.name must be one of .*resnet_tiny"):
        tiny_config("model.backbone.name=toy_convnet")
    registered(BACKBONES, "toy_convnet", "toy_backbone")
    config = tiny_config("model.backbone.name=toy_convnet", "model.backbone.freeze_stem_and_conv2=true")
    torch.manual_seed(0)
    model = build_model(config.model)
    assert model.backbone.stride == 16 and model.backbone.conv4_channels == 32
    assert not any(p.requires_grad for p in model.backbone.conv4[:2].parameters())
    clip = torch.rand(3, 3, 96, 128)
    _, losses = model.train()(clip, {"boxes": torch.tensor([[10.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])})
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.backbone.conv5[0].weight.grad.abs().sum() > 0
    detections, _ = model.eval()(clip)
    assert detections[0]["boxes"].shape[1] == 4


def _csv_split(root):
    root.mkdir()
    (root / "val.csv").write_text("video,frame_index,image,width,height,x1,y1,x2,y2,label\n"
                                  "cat_walk,0,f0.jpg,64,48,1,2,30,40,2\n"
                                  "cat_walk,1,f1.jpg,64,48,,,,,\n"
                                  "cat_walk,0,f0.jpg,64,48,5,5,9,9,1\n")
    return root


def test_a_registered_dataset_reader_is_a_valid_data_format(registered, tiny_config, tmp_path):
    overrides = ("data.format=toy_csv", f"data.root={_csv_split(tmp_path / 'data')}", "model.num_classes=2",
                 "data.class_names=[dog,cat]")
    with pytest.raises(ConfigError, match="data.format must be one of vid, cocovid"):
        tiny_config(*overrides)
    registered(DATASET_READERS, "toy_csv", "toy_reader")
    config = tiny_config(*overrides)
    split = read_split(config.data, "val")
    assert [len(video.frames) for video in split.videos] == [2] and split.class_names == ("dog", "cat")
    assert split.videos[0].frames[0].labels.tolist() == [2, 1] and len(split.videos[0].frames[1].boxes) == 0
    with pytest.raises(FileNotFoundError, match="train.csv"):
        read_split(config.data, "train")


@pytest.fixture
def detection_file(tmp_path):
    """A CocoVID ground truth of two frames (one box each) and detections: three in frame 0, none in frame 1."""
    frames = [FrameRecord("v", t, str(tmp_path / f"{t}.jpg"), 64, 48, np.array([[10, 10, 30, 30]], np.float32),
                          np.array([1]), np.array([0])) for t in range(2)]
    dataset = DatasetRecord([VideoRecord("v", frames)], ("dog",))
    for frame in frames:  # reading a CocoVID split checks that its frame files exist
        Image.new("RGB", (64, 48)).save(frame.image_path)
    write_cocovid(dataset, tmp_path / "gt.json")
    write_jsonl(tmp_path / "dets.jsonl", dataset, Detections([0, 0, 0], [1, 1, 1], [0.9, 0.5, 0.3],
                                                             [[10, 10, 30, 30], [40, 5, 60, 20], [0, 0, 5, 5]]))
    return ["eval", "--detections", str(tmp_path / "dets.jsonl"), "--gt-json", str(tmp_path / "gt.json")]


def test_a_registered_post_processor_runs_from_the_cli(registered, detection_file, tmp_path, capsys):
    registered(POSTPROCESSORS, "topk", "toy_postprocessor")
    assert main([*detection_file, "--out", str(tmp_path / "rep"), "--post", "topk", "--topk-k", "2"]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["post"] == "topk" and report["topk"]["k"] == 2
    assert (report["topk"]["detections_before"], report["topk"]["detections_after"]) == (3, 2)
    assert len((tmp_path / "rep" / "detections_topk.jsonl").read_text().splitlines()) == 2
    assert main([*detection_file, "--post", "topk", "--topk-k", "0"]) == 2
    assert "--topk-k must be >= 1" in capsys.readouterr().err


def test_a_registered_metric_is_reported_by_eval(registered, detection_file, tmp_path, capsys):
    registered(METRICS, "coverage", "toy_metric")
    assert main([*detection_file, "--out", str(tmp_path / "rep"), "--metrics", "vid,coverage"]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["coverage"] == {"coverage": 0.5}
    assert "coverage: 50.0" in (tmp_path / "rep" / "report.txt").read_text()
    assert "coverage: 50.0" in capsys.readouterr().out
