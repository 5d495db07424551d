"""train --init-from with the same and another class list, curves.png (also after SIGTERM), eval --opts."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from dsfnet import cli
from dsfnet.config import VID_CLASS_NAMES, load_config
from dsfnet.engine.checkpoint import initialise_from, load_checkpoint
from dsfnet.engine.hooks import Hook
from dsfnet.engine.signals import TrainingStopped
from dsfnet.engine.trainer import train
from dsfnet.models.build import build_model

from engine.enginehelpers import FakeClips, collate

BUNDLED = "dsfnet/assets/synth_light_dsfnet.pt"

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def bundled_model(num_classes: int = 30):
    """A model of configs/own_videos_light.yaml (the bundled checkpoint's architecture) for ``num_classes``."""
    torch.manual_seed(0)
    return build_model(load_config("configs/own_videos_light.yaml", [f"model.num_classes={num_classes}", "data.class_names=null"]).model)


def test_same_class_list_loads_every_weight():
    model = bundled_model()
    assert initialise_from(model, "bundled:light", VID_CLASS_NAMES[:30]) == []
    for name, value in load_checkpoint(BUNDLED)["model"].items():
        assert torch.equal(model.state_dict()[name], value.float()), name


def test_another_class_list_reinitialises_the_class_layers_keeping_shared_names(caplog):
    model = bundled_model(2)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    fresh = initialise_from(model, "bundled:light", ("person", "car"))
    assert set(fresh) == {"box_head.cls_score.weight", "box_head.cls_score.bias", "box_head.bbox_pred.weight",
                          "box_head.bbox_pred.bias"}
    old, new = load_checkpoint(BUNDLED)["model"], model.state_dict()
    car = VID_CLASS_NAMES.index("car") + 1
    assert torch.equal(new["box_head.cls_score.weight"][0], old["box_head.cls_score.weight"][0])  # background
    assert torch.equal(new["box_head.cls_score.weight"][2], old["box_head.cls_score.weight"][car])  # car by name
    assert torch.equal(new["box_head.cls_score.weight"][1], before["box_head.cls_score.weight"][1])  # person fresh
    assert torch.equal(new["box_head.bbox_pred.weight"][8:12], old["box_head.bbox_pred.weight"][4 * car:4 * car + 4])
    shared = [name for name in old if not name.startswith("box_head.")]
    assert all(torch.equal(new[name], old[name].float()) for name in shared)


def test_unknown_bundled_name_is_one_line():
    with pytest.raises(ValueError, match="unknown bundled checkpoint 'heavy'"):
        initialise_from(bundled_model(), "bundled:heavy")


class StopAt(Hook):
    """Sends this process SIGTERM after ``iteration`` (as a scheduler would)."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_step(self, trainer) -> None:
        if trainer.iteration == self.iteration:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("stop", [None, 2])
def test_curves_png_is_written_at_the_end_and_after_sigterm(tmp_path, stop):
    config = load_config(TINY, ["train.iterations=4", "train.log_interval=1", "model.num_classes=3"])
    hooks = [StopAt(stop)] if stop else []
    if stop:
        with pytest.raises(TrainingStopped):
            train(config, tmp_path, device="cpu", dataset=FakeClips(4), collate_fn=collate, progress=False,
                  hooks=hooks)
        assert (tmp_path / "last.pth").is_file() and not (tmp_path / "final.pth").exists()
    else:
        train(config, tmp_path, device="cpu", dataset=FakeClips(4), collate_fn=collate, progress=False)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_opts_override_the_config(tmp_path, capsys):
    code = cli.main(["eval", "configs/synth_light_dsfnet.yaml", "--weights", BUNDLED, "--out", str(tmp_path),
                     "--opts", "data.bogus=1"])
    assert code == 2 and "unknown config key 'data.bogus'" in capsys.readouterr().err
    code = cli.main(["eval", "--detections", str(tmp_path / "d.jsonl"), "--gt-json", "x.json", "--opts", "a=1"])
    assert code == 2 and "--opts changes CONFIG" in capsys.readouterr().err
