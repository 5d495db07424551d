"""The training loop (DESIGN §3): iteration-based SGD, accumulation, bf16 autocast, DDP, exact resume.

:class:`Trainer` is built from its parts (model, optimiser, schedule, batch stream, hooks): :meth:`Trainer.run`
steps from the start iteration to the end, :meth:`Trainer.run_step` is one optimiser step (gradient
accumulation, bf16 autocast), and hooks (``dsfnet.engine.hooks``) log, checkpoint and evaluate around the steps
(``before_train``, ``before_step``, ``after_step``, ``after_train``). :func:`build_trainer` builds those parts
from a config (run folder, model, optimiser, data stream, resumed state) and :func:`train` runs it. A run writes
into ``out_dir``: ``config.yaml`` (resolved config), ``metrics.jsonl`` (one JSON object per log / eval step),
TensorBoard event files under ``tb/``, ``last.pth`` (full training state, every ``train.checkpoint_interval``
iterations and at the end) and ``final.pth`` (config + weights only; with ``train.ema_decay`` the moving average
of the weights, :mod:`dsfnet.engine.weight_average`).

Exact resume: the clips seen at optimiser step ``i`` are a function of ``(seed, i)`` (a resumable sampler,
re-seeded per epoch), and the checkpoint holds every RNG state, so in deterministic CPU mode a run killed and
resumed from ``last.pth`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dsfnet.config import Config, class_names
from dsfnet.data.augment import ClipAugment
from dsfnet.data.dataset import TrainClipDataset, collate_clips, worker_init_fn
from dsfnet.data.split import training_splits
from dsfnet.data.transforms import ClipTransform
from dsfnet.engine import distributed as dist_utils
from dsfnet.engine.checkpoint import (check_compatible, initialise_from, load_checkpoint, rng_state, save_checkpoint,
                                      set_rng_state, training_checkpoint)
from dsfnet.engine.distributed import DistributedContext, ResumableDistributedSampler
from dsfnet.engine.hooks import Evaluation, Hook, MetricsLog, default_hooks
from dsfnet.engine.run_dir import locked_run_dir, record_config
from dsfnet.engine.signals import TrainingStopped, stop_on_sigterm, stop_requested
from dsfnet.engine.schedule import build_optimizer, build_scheduler, lr_factor
from dsfnet.engine.weight_average import WeightAverage
from dsfnet.errors import InputError, InputNotFound, OutputExists, TrainingDiverged
from dsfnet.jsonable import changed_settings
from dsfnet.models.backbone import check_trainable_from
from dsfnet.models.build import build_model

logger = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("last.pth", "final.pth")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained (unwrapped) model (the averaged weights with ``train.ema_decay``,
    as in ``final.pth``), the iteration reached, the last logged losses."""

    model: nn.Module
    iteration: int
    finished: bool
    metrics: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- data
def build_train_dataset(config: Config) -> tuple[Dataset, Callable]:
    """The training clips named by ``config.data`` and their collate function (``dsfnet.data``)."""
    transform = ClipTransform(config.data.min_size, config.data.max_size, config.data.flip_prob)
    augment = ClipAugment.from_config(config.data.augment, config.model.pixel_mean)
    dataset = TrainClipDataset(training_splits(config.data), config.data.num_support, transform, config.train.seed,
                               skip_bad=config.data.skip_bad_samples, augment=augment)
    if len(dataset) == 0:
        raise InputError(f"no training key frames in {', '.join(config.data.train_splits)} of {config.data.root}")
    return dataset, collate_clips


def batch_stream(dataset: Dataset, collate_fn: Callable, batch_size: int, start: int, seed: int,
                 context: DistributedContext, num_workers: int = 0, pin_memory: bool = False) -> Iterator:
    """Endless batches of this rank's clips, starting at batch ``start`` (counted from the run's beginning).

    Epoch ``e`` is a permutation seeded by ``seed + e`` (``dataset.set_epoch(e)`` is called if it exists), split
    across ranks; the incomplete last batch of an epoch is dropped. The loader's own generator is seeded too, so
    creating a loader never draws from the global RNG (which the checkpoint restores).
    """
    per_rank = math.ceil(len(dataset) / context.world_size)
    per_epoch = per_rank // batch_size
    if per_epoch == 0:
        raise InputError(f"the training set has {len(dataset)} clips: too few for {context.world_size} processes "
                         f"x {batch_size} clips per step")
    epoch, offset = divmod(start, per_epoch)
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        sampler = ResumableDistributedSampler(len(dataset), context.rank, context.world_size, seed, epoch,
                                              start=offset * batch_size)
        generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch * 10_007 + offset) * 257 + context.rank)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, collate_fn=collate_fn,
                            num_workers=num_workers, pin_memory=pin_memory, generator=generator,
                            worker_init_fn=worker_init_fn if num_workers > 0 else None)
        for batch in loader:
            yield epoch, batch
        epoch, offset = epoch + 1, 0


def to_device(batch: dict, device: torch.device) -> tuple[list, list]:
    clips = [clip.to(device, non_blocking=True) for clip in batch["clips"]]
    targets = [{k: v.to(device, non_blocking=True) for k, v in target.items()} for target in batch["targets"]]
    return clips, targets


# ---------------------------------------------------------------------------------------------- run folder
def check_run_dir(out_dir: Path, resume: bool) -> Optional[Path]:
    """The checkpoint to resume from (``None`` for a new run); refuses to overwrite a run with checkpoints."""
    existing = [name for name in CHECKPOINT_NAMES if (out_dir / name).exists()]
    if resume:
        if not (out_dir / "last.pth").is_file():
            raise InputNotFound(f"--resume: no checkpoint to resume from ({out_dir / 'last.pth'} not found)")
        return out_dir / "last.pth"
    if existing:
        raise OutputExists(f"run directory {out_dir} already holds checkpoints ({', '.join(existing)}): pass "
                              "--resume to continue that run, or choose another --out")
    return None


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (read at CUDA init)
        # warn_only: RoIAlign's CUDA backward has no deterministic kernel; CPU runs are bit-exact regardless
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


# ---------------------------------------------------------------------------------------------- training
def train(
    config: Config, out_dir: str | Path, resume: bool = False, device: str = "auto",
    dataset: Optional[Dataset] = None, collate_fn: Optional[Callable] = None, stop_after: Optional[int] = None,
    progress: bool = True, evaluation: Optional[Evaluation] = None, hooks: Sequence[Hook] = (),
) -> TrainResult:
    """Train ``config``'s model into ``out_dir`` (single process, or one rank of a torchrun job).

    Args:
        dataset, collate_fn: training clips (``{"clips": [...], "targets": [...]}`` batches); default: the
            splits of ``config.data``.
        stop_after: stop (after writing ``last.pth``) once this many iterations are done, e.g. to split a long
            run into jobs; ``--resume`` continues it.
        evaluation: ``(model, context) -> {"mAP": ..., ...}``, run on every rank every ``train.eval_interval``
            iterations (required when that is > 0; ``dsfnet.inference.evaluate.periodic_validation(config)`` is
            the validation split's mAP, each rank detecting its share of the videos).
        hooks: more :class:`~dsfnet.engine.hooks.Hook` s, called after the built-in ones at every step.
    """
    if config.train.eval_interval > 0 and evaluation is None:
        raise InputError("train.eval_interval > 0 needs an evaluation: pass evaluation="
                         "dsfnet.inference.evaluate.periodic_validation(config), or set train.eval_interval=0")
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled(),
                     torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        # one run per folder (rank 0 holds the lock); SIGTERM stops after the current iteration
        with dist_utils.process_group(device) as context, \
                locked_run_dir(Path(out_dir), enabled=context.is_main), stop_on_sigterm():
            return build_trainer(config, Path(out_dir), context, resume=resume, dataset=dataset,
                                 collate_fn=collate_fn, stop_after=stop_after, progress=progress,
                                 evaluation=evaluation, hooks=hooks).run()
    finally:
        # train.deterministic is process-wide state: give the caller back its own settings
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = deterministic[2:]


def build_trainer(
    config: Config, out_dir: Path, context: DistributedContext, *, resume: bool = False,
    dataset: Optional[Dataset] = None, collate_fn: Optional[Callable] = None, stop_after: Optional[int] = None,
    progress: bool = True, evaluation: Optional[Evaluation] = None, hooks: Sequence[Hook] = (),
) -> "Trainer":
    """The :class:`Trainer` of ``config`` (arguments as :func:`train`'s): model, optimiser and schedule (with a
    resumed run's state), this rank's batch stream from the resumed iteration on, the built-in hooks, then
    ``hooks``. Every check that can fail comes before the first write into ``out_dir``."""
    tc = config.train
    if not tc.init_from:  # a checkpoint to start from brings trained weights of its own
        check_trainable_from(config.model.backbone)
    resume_path = check_run_dir(out_dir, resume)
    checkpoint = load_checkpoint(resume_path) if resume_path is not None else None
    if checkpoint is not None:
        check_compatible(checkpoint, config)
    if dataset is None:
        dataset, collate_fn = build_train_dataset(config)
    seed_everything(tc.seed, tc.deterministic)  # same initial weights on every rank
    model = build_model(config.model)
    if tc.init_from and checkpoint is None:
        initialise_from(model, tc.init_from, class_names(config))
    model = model.to(context.device).train()
    optimizer = build_optimizer(model, tc)
    schedule = build_scheduler(optimizer, tc)
    start = 0
    if checkpoint is not None:
        start = _restore(checkpoint, model, optimizer, schedule, config, context)
    else:
        seed_everything(tc.seed + context.rank, False)  # each rank its own RPN / RoI sampling draws
    average = _weight_average(model, tc.ema_decay, checkpoint, context)
    if context.is_main:  # config.yaml keeps the run's first config; resumes.jsonl what each --resume changed
        out_dir.mkdir(parents=True, exist_ok=True)
        record_config(out_dir, config.to_dict(), checkpoint)
    end = tc.iterations if stop_after is None else min(tc.iterations, stop_after)
    batches = batch_stream(dataset, collate_fn, tc.clips_per_step, start * tc.accumulation_steps, tc.seed, context,
                           config.data.num_workers, pin_memory=context.device.type == "cuda")
    built_in = default_hooks(out_dir=out_dir, context=context, train=tc, start=start, progress=progress,
                             evaluation=evaluation)
    return Trainer(model=model, optimizer=optimizer, schedule=schedule, batches=batches,
                   hooks=built_in + list(hooks), config=config, out_dir=out_dir, context=context, start=start,
                   end=end, average=average)


def _weight_average(model: nn.Module, decay: float, checkpoint: Optional[dict],
                    context: DistributedContext) -> Optional[WeightAverage]:
    """The run's moving average of the weights (``None`` when ``decay`` is 0), a resumed run's restored."""
    if decay == 0:
        return None
    average = WeightAverage(model, decay)
    if checkpoint is not None and checkpoint.get("ema") is not None:
        average.load_state_dict(checkpoint["ema"])
    elif checkpoint is not None and context.is_main:
        logger.warning("train.ema_decay is set but the checkpoint has no weight average: it starts from the "
                       "resumed weights at iteration %d", int(checkpoint["iteration"]))
    return average


def _restore(checkpoint: dict, model: nn.Module, optimizer, schedule, config: Config,
             context: DistributedContext) -> int:
    """Weights, optimiser, schedule and RNG state of a resumed run; returns its iteration."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["scheduler"])
    start = int(checkpoint["iteration"])
    _apply_resumed_lr(optimizer, schedule, config.train, start, checkpoint, context)
    _restore_rng(checkpoint, context, config.train.seed)
    return start


class Trainer:
    """One training run from its parts: :meth:`run` steps from ``start`` to ``end``, calling ``hooks``.

    Args:
        model: the (unwrapped) detector, in training mode on ``context.device``; wrapped in DDP here when the
            process group is enabled.
        optimizer, schedule: its optimiser and learning-rate schedule (stepped once per optimiser step).
        batches: an endless iterator of ``(epoch, batch)`` for this rank from iteration ``start`` on
            (:func:`batch_stream`), ``train.accumulation_steps`` batches per step; closed when the run ends.
        hooks: :class:`~dsfnet.engine.hooks.Hook` s, called in order at each hook point.
        config: the run's config: ``train``'s step settings (accumulation, amp, gradient clipping, iterations)
            and what the checkpoints record.
        out_dir: where ``last.pth`` (on SIGTERM) and ``final.pth`` go.
        start, end: the iteration the run starts at (a resumed run's) and stops at.
        average: the moving average of the weights (``train.ema_decay``), updated after every optimiser step,
            kept in ``last.pth``; it is what ``final.pth`` holds and what periodic evaluation reads.

    Attributes read by hooks: ``model`` (unwrapped), ``context``, ``iteration`` (optimiser steps done), ``end``
    and ``last_step`` (the last step's losses, ``grad_norm``, ``data_time``, ``step_time``, ``lr`` and
    ``epoch``); hooks may call :meth:`save` and :meth:`result_model`.
    """

    def __init__(self, *, model: nn.Module, optimizer: torch.optim.Optimizer, schedule, batches: Iterator,
                 hooks: Sequence[Hook] = (), config: Config, out_dir: Path, context: DistributedContext,
                 start: int = 0, end: Optional[int] = None, average: Optional[WeightAverage] = None):
        self.model, self.optimizer, self.schedule, self.batches = model, optimizer, schedule, batches
        self.average = average
        self.hooks = list(hooks)
        self.config, self.out_dir, self.context = config, out_dir, context
        self.iteration = start
        self.end = config.train.iterations if end is None else end
        self.net = model
        if context.enabled:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        self.amp = config.train.amp and context.device.type == "cuda"
        self.last_step: dict = {}
        self._saved: tuple[Optional[Path], int] = (None, -1)  # the last checkpoint written and its iteration

    def run(self) -> TrainResult:
        """Steps from the start iteration to ``end``; ``final.pth`` when training is complete."""
        config, context = self.config, self.context
        if context.is_main:
            logger.info("training %s (%s) from iteration %d to %d on %d x %s, %d clips per step",
                        config.model.variant, config.model.backbone.name, self.iteration, self.end,
                        context.world_size, context.device,
                        context.world_size * config.train.clips_per_step * config.train.accumulation_steps)
        try:
            self._call_hooks("before_train")
            while self.iteration < self.end:
                self._call_hooks("before_step")
                self.last_step = self.run_step()
                self.iteration += 1
                self._call_hooks("after_step")
                self._stop_if_signalled()
        finally:
            self.batches.close()  # shuts loader workers down
            self._call_hooks("after_train")
        finished = self.iteration >= config.train.iterations
        result_model = self.result_model()
        if finished and context.is_main:
            save_checkpoint(self.out_dir / "final.pth", training_checkpoint(result_model, config, self.iteration)
                            | {"optimizer": None, "scheduler": None, "rng": None})
            logger.info("training finished: %s", self.out_dir / "final.pth")
        metrics = next((hook.last for hook in self.hooks if isinstance(hook, MetricsLog)), {})
        return TrainResult(result_model, self.iteration, finished, metrics)

    def result_model(self) -> nn.Module:
        """The weights this run produces: the moving average with ``train.ema_decay``, else the model itself."""
        return self.model if self.average is None else self.average.module()

    def _call_hooks(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)(self)

    def _stop_if_signalled(self) -> None:
        """After SIGTERM (on any rank): ``last.pth`` of this iteration, then :class:`TrainingStopped`."""
        if self.iteration < self.end and (signum := stop_requested(self.context)) is not None:
            last = self.out_dir / "last.pth"
            if self._saved != (last, self.iteration):  # not just written by a hook
                self.save(last)
            raise TrainingStopped(signum, self.iteration)

    def run_step(self) -> dict:
        """One optimiser step over ``train.accumulation_steps`` batches (bf16 autocast on GPU when ``train.amp``;
        DDP synchronises gradients on the last one only). Returns the step's mean losses and timings."""
        tc, context = self.config.train, self.context
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        values: dict[str, float] = {"data_time": 0.0}
        for micro in range(tc.accumulation_steps):
            data_tic = time.perf_counter()
            epoch, batch = next(self.batches)
            clips, targets = to_device(batch, context.device)
            values["data_time"] += time.perf_counter() - data_tic
            sync = micro == tc.accumulation_steps - 1 or not context.enabled
            with (contextlib.nullcontext() if sync else self.net.no_sync()), \
                    torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=self.amp):
                _, losses = self.net(clips, targets)
                loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"loss is {loss.item()} at iteration {self.iteration} (rank {context.rank}): "
                                   "lower train.lr, add train.warmup_iterations or set train.clip_grad_norm")
            (loss / tc.accumulation_steps).backward()
            for name, value in [("loss", loss), *losses.items()]:
                values[name] = values.get(name, 0.0) + value.item() / tc.accumulation_steps
        values.update(self.model.pop_attention_statistics())  # a collapsing attention shows in the logs
        if tc.clip_grad_norm > 0:
            values["grad_norm"] = float(nn.utils.clip_grad_norm_(self.model.parameters(), tc.clip_grad_norm))
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.schedule.step()
        if self.average is not None:
            self.average.update()
        return values | {"lr": lr, "epoch": epoch, "step_time": time.perf_counter() - started}

    def save(self, path: Path) -> None:
        """Rank 0 writes the training checkpoint; every rank's RNG state goes in it (a collective: all ranks
        call this)."""
        context = self.context
        states = dist_utils.all_gather_object(rng_state(), context) if context.enabled else None
        if context.is_main:
            save_checkpoint(path, training_checkpoint(
                self.model, self.config, self.iteration, self.optimizer, self.schedule,
                extra={"rng_all_ranks": states, "world_size": context.world_size,
                       "ema": None if self.average is None else self.average.state_dict()}))
        dist_utils.barrier(context)
        self._saved = (path, self.iteration)


def _apply_resumed_lr(optimizer, schedule, tc, start: int, checkpoint: dict, context) -> None:
    """The current config's ``train.lr`` / schedule apply from the resumed iteration on (identical values when
    unchanged); changed training settings are reported."""
    changes = changed_settings({"train": checkpoint["config"].get("train", {})}, {"train": dataclasses.asdict(tc)})
    changed = [f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items()]
    if changed and context.is_main:
        logger.warning("resuming with changed training settings: %s", "; ".join(changed))
    schedule.base_lrs = [tc.lr * group["lr_mult"] for group in optimizer.param_groups]
    for group, base_lr in zip(optimizer.param_groups, schedule.base_lrs):
        group["initial_lr"] = base_lr
        group["lr"] = base_lr * lr_factor(start, tc)


def _restore_rng(checkpoint: dict, context: DistributedContext, seed: int) -> None:
    states = checkpoint.get("rng_all_ranks")
    if context.enabled:
        if states is not None and len(states) == context.world_size:
            set_rng_state(states[context.rank])
        else:
            logger.warning("checkpoint was written by %s processes, resuming with %d: RNG streams re-seeded",
                           checkpoint.get("world_size"), context.world_size)
            seed_everything(seed + context.rank + int(checkpoint["iteration"]), False)
    elif checkpoint.get("rng") is not None:
        set_rng_state(checkpoint["rng"])
