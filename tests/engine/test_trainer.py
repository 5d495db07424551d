"""The training loop: it learns, writes its run folder, resumes exactly, and refuses to clobber a run."""

from __future__ import annotations

import json

import pytest
import torch

from dsfnet.config import load_config
from dsfnet.engine.checkpoint import load_checkpoint, load_model
from dsfnet.engine.hooks import Hook
from dsfnet.engine.trainer import train

from enginehelpers import FakeClips, collate


def test_run_folder_is_complete_and_loss_goes_down(tmp_path, tiny_config):
    config = tiny_config("model.variant=baseline", "train.iterations=12", "train.lr=0.02", "train.log_interval=4",
                         "train.checkpoint_interval=8", "model.num_classes=3", "train.clip_grad_norm=10.0")
    result = train(config, tmp_path / "run", device="cpu", dataset=FakeClips(6), collate_fn=collate,
                   progress=False)
    assert result.finished and result.iteration == 12
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [4, 8, 12]
    losses = [r["train"]["loss"] for r in records]
    assert losses[-1] < losses[0], losses
    assert {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "lr", "time_per_iter",
            "grad_norm", "data_time"} <= set(records[0]["train"])
    run = tmp_path / "run"
    assert load_config(run / "config.yaml") == config
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert load_checkpoint(run / "last.pth")["iteration"] == 12
    model, saved_config = load_model(run / "final.pth")
    assert saved_config.model == config.model
    for name, value in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value)


class Crash(Exception):
    pass


class CrashAt(Hook):
    """Simulates a killed run: raises after optimiser step ``k`` (and after the built-in hooks of that step)."""

    def __init__(self, k: int):
        self.k = k

    def after_step(self, trainer) -> None:
        if trainer.iteration == self.k:
            raise Crash(f"killed at {self.k}")


class RecordWeights(Hook):
    """Copies of the model's state (parameters and buffers) after every optimiser step."""

    def __init__(self):
        self.steps: list[dict] = []

    def after_step(self, trainer) -> None:
        self.steps.append({name: value.clone() for name, value in trainer.model.state_dict().items()})


def test_final_weights_are_the_moving_average_of_every_step(tmp_path, tiny_config):
    decay = 0.6
    config = tiny_config("model.variant=baseline", "model.num_classes=3", "train.iterations=4", "train.lr=0.02",
                         f"train.ema_decay={decay}")
    record = RecordWeights()
    result = train(config, tmp_path / "run", device="cpu", dataset=FakeClips(6), collate_fn=collate,
                   progress=False, hooks=[record])
    final = load_checkpoint(tmp_path / "run" / "final.pth")["model"]
    parameters = dict(result.model.named_parameters())
    for name in parameters:
        expected = record.steps[0][name]  # the first step's weights, then decay · average + (1 - decay) · weights
        for step in record.steps[1:]:
            expected = decay * expected + (1 - decay) * step[name]
        assert torch.allclose(final[name], expected, atol=1e-6), name
        assert torch.equal(result.model.state_dict()[name], final[name])
    moved = [name for name in final if not torch.equal(final[name], record.steps[-1][name])]
    assert moved  # the average is not the last step's weights


@pytest.mark.parametrize("variant, ema", [("dsfnet", 0.0), ("baseline", 0.5)])
def test_killed_and_resumed_run_ends_with_identical_weights(tmp_path, tiny_config, variant, ema):
    config = tiny_config(f"model.variant={variant}", "model.num_classes=3", "train.iterations=6",
                         "train.checkpoint_interval=3", "train.accumulation_steps=2", "train.deterministic=true",
                         "train.lr_steps=[4]", "train.warmup_iterations=2", "train.log_interval=2",
                         f"train.ema_decay={ema}")
    dataset = FakeClips(5)  # 2 steps x 2 clips per epoch of 5: the run crosses epochs, and resumes mid-epoch
    reference = train(config, tmp_path / "reference", device="cpu", dataset=dataset, collate_fn=collate,
                      progress=False)
    with pytest.raises(Crash):
        train(config, tmp_path / "killed", device="cpu", dataset=FakeClips(5), collate_fn=collate, progress=False,
              hooks=[CrashAt(5)])
    assert load_checkpoint(tmp_path / "killed" / "last.pth")["iteration"] == 3
    resumed = train(config, tmp_path / "killed", resume=True, device="cpu", dataset=FakeClips(5),
                    collate_fn=collate, progress=False)
    assert resumed.finished and resumed.iteration == 6
    for name, value in reference.model.state_dict().items():  # the average's weights with train.ema_decay
        assert torch.equal(resumed.model.state_dict()[name], value), name
    ref_ckpt = load_checkpoint(tmp_path / "reference" / "last.pth")
    assert (ref_ckpt["ema"] is None) == (ema == 0)
    res_ckpt = load_checkpoint(tmp_path / "killed" / "last.pth")
    for group_ref, group_res in zip(ref_ckpt["optimizer"]["state"].values(), res_ckpt["optimizer"]["state"].values()):
        assert torch.equal(group_ref["momentum_buffer"], group_res["momentum_buffer"])
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [2, 4, 6]  # the killed run's iteration 4 replaced


def test_stop_after_then_resume_equals_uninterrupted(tmp_path, tiny_config):
    config = tiny_config("model.variant=baseline", "model.num_classes=3", "train.iterations=4", "train.deterministic=true",
                         "train.checkpoint_interval=100", "train.clips_per_step=2")
    reference = train(config, tmp_path / "a", device="cpu", dataset=FakeClips(6), collate_fn=collate, progress=False)
    first = train(config, tmp_path / "b", device="cpu", dataset=FakeClips(6), collate_fn=collate, progress=False,
                  stop_after=2)
    assert not first.finished and not (tmp_path / "b" / "final.pth").exists()
    resumed = train(config, tmp_path / "b", resume=True, device="cpu", dataset=FakeClips(6), collate_fn=collate,
                    progress=False)
    for name, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
