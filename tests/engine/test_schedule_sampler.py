"""LR schedule of the paper recipe and the resumable distributed sampler / batch stream."""

from __future__ import annotations

import itertools

import pytest
import torch

from dsfnet.config import TrainConfig
from dsfnet.engine.distributed import DistributedContext, ResumableDistributedSampler
from dsfnet.engine.schedule import build_optimizer, build_scheduler, lr_factor
from dsfnet.engine.trainer import batch_stream

from enginehelpers import FakeClips, collate


def test_paper_schedule_steps_at_109k_and_219k():
    config = TrainConfig()  # defaults = the paper recipe
    assert config.lr == 0.002 and config.iterations == 247_000  # 8 x 2.5e-4 (summed -> averaged gradients)
    assert lr_factor(0, config) == 1.0
    assert lr_factor(108_999, config) == 1.0
    assert lr_factor(109_000, config) == pytest.approx(0.1)
    assert lr_factor(218_999, config) == pytest.approx(0.1)
    assert lr_factor(219_000, config) == pytest.approx(0.01)
    assert lr_factor(246_999, config) == pytest.approx(0.01)


def test_warmup_is_linear_from_warmup_factor():
    config = TrainConfig(warmup_iterations=10, warmup_factor=0.1, lr_steps=(5,))
    assert lr_factor(0, config) == pytest.approx(0.1)
    assert lr_factor(4, config) == pytest.approx(0.1 * 0.6 + 0.4)
    assert lr_factor(5, config) == pytest.approx((0.1 * 0.5 + 0.5) * 0.1)
    assert lr_factor(10, config) == pytest.approx(0.1)


def test_scheduler_drives_optimizer_lr():
    config = TrainConfig(lr=0.5, lr_steps=(2,), momentum=0.0, weight_decay=0.0)
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.5, 0.5, 0.05, 0.05])


def test_sampler_partitions_an_epoch_across_ranks_and_skips_to_an_offset():
    ranks = [ResumableDistributedSampler(10, rank, 3, seed=4, epoch=2).indices() for rank in range(3)]
    assert all(len(indices) == 4 for indices in ranks)  # padded to 12
    assert set(itertools.chain(*ranks)) == set(range(10))
    assert list(ResumableDistributedSampler(10, 1, 3, seed=4, epoch=2, start=3)) == ranks[1][3:]
    assert ResumableDistributedSampler(10, 0, 1, seed=4, epoch=3).indices() != \
        ResumableDistributedSampler(10, 0, 1, seed=4, epoch=2).indices()


def test_batch_stream_started_at_k_continues_the_uninterrupted_stream():
    context = DistributedContext()
    full = batch_stream(FakeClips(5), collate, 2, 0, 7, context)
    order = [(epoch, [m["index"] for m in batch["metas"]]) for epoch, batch in itertools.islice(full, 7)]
    assert [epoch for epoch, _ in order] == [0, 0, 1, 1, 2, 2, 3]  # 2 full batches per epoch of 5
    dataset = FakeClips(5)
    resumed = batch_stream(dataset, collate, 2, 3, 7, context)
    tail = [(epoch, [m["index"] for m in batch["metas"]]) for epoch, batch in itertools.islice(resumed, 4)]
    assert tail == order[3:]
    assert dataset.epochs_seen[0] == 1


def test_fusion_modules_get_their_own_learning_rates(tiny_config):
    from dsfnet.models.build import build_model

    config = tiny_config("train.lr=0.04", "train.frame_fusion_lr_mult=0.1", "train.instance_fusion_lr_mult=0.5",
                         "train.lr_steps=[2]", "train.warmup_iterations=0")
    model = build_model(config.model)
    optimizer = build_optimizer(model, config.train)
    scheduler = build_scheduler(optimizer, config.train)
    frame, instance, rest = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("frame_fusion.") for p in frame["params"])
    assert all(names[id(p)].startswith("instance_fusions.") for p in instance["params"])
    assert not any("fusion" in names[id(p)] for p in rest["params"])
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(names)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    # x0.1 after step 2, ratios kept
    assert rest["lr"] == pytest.approx(0.004)
    assert frame["lr"] == pytest.approx(0.0004) and instance["lr"] == pytest.approx(0.002)
