"""The trainer built from parts: hook points in order, hooks at the intervals they are given, no config read."""

from __future__ import annotations

import json

import torch

from dsfnet.engine.checkpoint import load_checkpoint
from dsfnet.engine.distributed import DistributedContext
from dsfnet.engine.hooks import Hook, MetricsLog, PeriodicCheckpoint, RunLog
from dsfnet.engine.schedule import build_optimizer, build_scheduler
from dsfnet.engine.trainer import Trainer, batch_stream
from dsfnet.models.build import build_model

from enginehelpers import FakeClips, collate


class Calls(Hook):
    """Records every hook point with the iteration the trainer was at."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def before_train(self, trainer) -> None:
        self.calls.append(("before_train", trainer.iteration))

    def before_step(self, trainer) -> None:
        self.calls.append(("before_step", trainer.iteration))

    def after_step(self, trainer) -> None:
        self.calls.append(("after_step", trainer.iteration))

    def after_train(self, trainer) -> None:
        self.calls.append(("after_train", trainer.iteration))


def test_trainer_from_parts_calls_its_hooks_at_their_own_intervals(tmp_path, tiny_config):
    # the config's intervals (log 5, checkpoint 10) are not the hooks': the hooks' own must be the ones used
    config = tiny_config("model.variant=frame", "model.num_classes=3", "train.iterations=4")
    torch.manual_seed(0)
    model = build_model(config.model).train()
    optimizer = build_optimizer(model, config.train)
    context = DistributedContext()
    batches = batch_stream(FakeClips(4, frames=2, height=64, width=80), collate, 1, 0, 0, context)
    calls, run_log = Calls(), RunLog(tmp_path, True, 0)
    hooks = [MetricsLog(run_log, interval=3, iterations=4, log_lines=False),
             PeriodicCheckpoint(tmp_path / "every2.pth", 2), calls]
    trainer = Trainer(model=model, optimizer=optimizer, schedule=build_scheduler(optimizer, config.train),
                      batches=batches, hooks=hooks, config=config, out_dir=tmp_path, context=context)
    result = trainer.run()
    assert result.finished and result.iteration == 4
    steps = [call for i in range(4) for call in (("before_step", i), ("after_step", i + 1))]
    assert calls.calls == [("before_train", 0), *steps, ("after_train", 4)]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [record["iteration"] for record in records] == [3, 4]  # every 3 steps, and the last
    assert "attention/frame_entropy" in records[0]["train"]  # the fusion's attention statistics are logged
    assert load_checkpoint(tmp_path / "every2.pth")["iteration"] == 4
    assert not (tmp_path / "last.pth").exists() and (tmp_path / "final.pth").exists()
