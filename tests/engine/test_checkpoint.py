"""Checkpoints: atomic writes, clear load errors, architecture checks, model loading and export."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dsfnet.engine import checkpoint as ckpt
from dsfnet.engine.checkpoint import (check_compatible, export_weights, load_checkpoint, load_model, rng_state,
                                      save_checkpoint, set_rng_state, training_checkpoint)
from dsfnet.models.build import build_model


@pytest.fixture
def tiny_state(tiny_config):
    config = tiny_config()
    torch.manual_seed(0)
    model = build_model(config.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return config, model, training_checkpoint(model, config, 7, optimizer)


def test_round_trip_holds_every_training_entry(tmp_path, tiny_state):
    config, model, state = tiny_state
    save_checkpoint(tmp_path / "last.pth", state)
    loaded = load_checkpoint(tmp_path / "last.pth")
    assert {"format_version", "dsfnet_version", "config", "model", "optimizer", "scheduler", "iteration",
            "rng"} <= set(loaded)
    assert loaded["format_version"] == 1 and loaded["iteration"] == 7 and loaded["config"] == config.to_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(loaded["model"][name], value)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]  # no temp file left


def test_interrupted_write_keeps_previous_checkpoint(tmp_path, tiny_state, monkeypatch):
    _, _, state = tiny_state
    path = tmp_path / "last.pth"
    save_checkpoint(path, state)
    before = path.read_bytes()
    real_save = torch.save

    def crash_mid_write(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.seek(handle.tell() // 2)
        handle.truncate()
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(ckpt.torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, dict(state, iteration=8))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["iteration"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_load_errors_are_clear(tmp_path, tiny_state):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pth")
    save_checkpoint(tmp_path / "good.pth", tiny_state[2])
    (tmp_path / "cut.pth").write_bytes((tmp_path / "good.pth").read_bytes()[:5000])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.pth")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pth")
    with pytest.raises(ValueError, match="not a DSFNet checkpoint"):
        load_checkpoint(tmp_path / "foreign.pth")
    save_checkpoint(tmp_path / "future.pth", dict(tiny_state[2], format_version=99))
    with pytest.raises(ValueError, match="format_version 99"):
        load_checkpoint(tmp_path / "future.pth")


def test_check_compatible_names_differing_architecture_fields(tiny_config, tiny_state):
    _, _, state = tiny_state
    check_compatible(state, tiny_config("train.lr=0.5", "test.num_frames=5"))  # training / test keys are free
    other = tiny_config("model.variant=baseline", "model.num_classes=5", "model.roi.representation_size=32",
                        "model.backbone.norm=batch_norm")
    with pytest.raises(ValueError) as error:
        check_compatible(state, other)
    message = str(error.value)
    for field in ("model.variant", "model.num_classes", "model.roi.representation_size", "model.backbone.norm"):
        assert field in message
    with pytest.raises(ValueError, match="format_version"):
        check_compatible(dict(state, format_version=0), tiny_config())


def test_load_model_and_fp16_export(tmp_path, tiny_state):
    config, model, state = tiny_state
    save_checkpoint(tmp_path / "last.pth", state)
    loaded, loaded_config = load_model(tmp_path / "last.pth")
    assert not loaded.training and loaded_config.model == config.model
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
    export_weights(tmp_path / "last.pth", tmp_path / "small.pth", half=True)
    small = load_checkpoint(tmp_path / "small.pth")
    assert "optimizer" not in small and "rng" not in small
    assert (tmp_path / "small.pth").stat().st_size < 0.6 * (tmp_path / "last.pth").stat().st_size
    half_model, _ = load_model(tmp_path / "small.pth")
    for name, value in model.state_dict().items():
        assert torch.allclose(half_model.state_dict()[name], value, rtol=1e-3, atol=1e-4)


def test_rng_state_round_trip():
    state = rng_state()
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    set_rng_state(state)
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == first


def test_load_model_needs_no_imagenet_weights_file(tmp_path, tiny_config):
    """A checkpoint trained from an ImageNet file loads where that file does not exist: it holds every weight."""
    config = tiny_config("model.backbone.name=timm:tf_efficientnet_lite0", "model.backbone.norm=frozen_bn")
    torch.manual_seed(0)
    model = build_model(config.model)  # random weights stand in for trained ones
    config.model.backbone.weights = str(tmp_path / "imagenet_lite0_on_the_cluster.pth")  # never written
    save_checkpoint(tmp_path / "final.pth", training_checkpoint(model, config, 10))
    with pytest.raises(FileNotFoundError, match="imagenet_lite0_on_the_cluster.pth"):
        build_model(config.model)  # building from the config itself does look for the file
    loaded, loaded_config = load_model(tmp_path / "final.pth")
    assert loaded_config.model.backbone.weights is None  # cleared: the checkpoint holds the weights
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
