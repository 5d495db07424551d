"""The training loop (DESIGN §3): iteration-based SGD, accumulation, bf16 autocast, DDP, exact resume.

``train(config, out_dir)`` writes into ``out_dir``: ``config.yaml`` (resolved config), ``metrics.jsonl`` (one
JSON object per log / eval step), TensorBoard event files under ``tb/``, ``last.pth`` (full training state,
every ``train.checkpoint_interval`` iterations and at the end) and ``final.pth`` (config + weights only).

Exact resume: the clips seen at optimiser step ``i`` are a function of ``(seed, i)`` (a resumable sampler,
re-seeded per epoch), and the checkpoint holds every RNG state, so in deterministic CPU mode a run killed and
resumed from ``last.pth`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dsfnet.atomic import append_line
from dsfnet.config import Config
from dsfnet.engine import distributed as dist_utils
from dsfnet.engine.checkpoint import (check_compatible, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                                      training_checkpoint)
from dsfnet.data.dataset import worker_init_fn
from dsfnet.engine.distributed import DistributedContext, ResumableDistributedSampler
from dsfnet.engine.run_dir import locked_run_dir, record_config
from dsfnet.engine.signals import TrainingStopped, stop_on_sigterm, stop_requested
from dsfnet.engine.schedule import build_optimizer, build_scheduler, lr_factor

logger = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("last.pth", "final.pth")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained (unwrapped) model, the iteration reached, the last logged losses."""

    model: nn.Module
    iteration: int
    finished: bool
    metrics: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- data
def build_train_dataset(config: Config) -> tuple[Dataset, Callable]:
    """The training clips named by ``config.data`` and their collate function (``dsfnet.data``)."""
    records = read_split_records(config, train=True)
    from dsfnet.data.dataset import TrainClipDataset, collate_clips
    from dsfnet.data.transforms import ClipTransform

    transform = ClipTransform(config.data.min_size, config.data.max_size, config.data.flip_prob)
    dataset = TrainClipDataset(records, config.data.num_support, transform, config.train.seed,
                               skip_bad=config.data.skip_bad_samples)
    if len(dataset) == 0:
        raise ValueError(f"no training key frames in {', '.join(config.data.train_splits)} of {config.data.root}")
    return dataset, collate_clips


def read_split_records(config: Config, train: bool) -> list:
    """``DatasetRecord`` s of the training splits (``train=True``) or ``[val split]``; clear errors for bad paths."""
    data = config.data
    if data.format == "cocovid":
        from dsfnet.data.cocovid import read_cocovid

        json_path = data.train_json if train else data.val_json
        key = "data.train_json" if train else "data.val_json"
        if json_path is None:
            raise ValueError(f"{key} must name a CocoVID annotation file when data.format is cocovid")
        if not Path(json_path).is_file():
            raise FileNotFoundError(f"annotation file not found: {json_path} ({key})")
        return [read_cocovid(json_path, image_root=data.root)]
    if not Path(data.root).is_dir():
        raise FileNotFoundError(f"dataset root not found: {data.root} (data.root)")
    from dsfnet.data.vid import read_vid_split

    splits = data.train_splits if train else (data.val_split,)
    return [read_vid_split(data.root, split, skip_bad=data.skip_bad_samples) for split in splits]


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
        raise ValueError(f"the training set has {len(dataset)} clips: too few for {context.world_size} processes "
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
            raise FileNotFoundError(f"--resume: no checkpoint to resume from ({out_dir / 'last.pth'} not found)")
        return out_dir / "last.pth"
    if existing:
        raise FileExistsError(f"run directory {out_dir} already holds checkpoints ({', '.join(existing)}): pass "
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


class RunLogger:
    """Rank-0 outputs: ``metrics.jsonl`` and TensorBoard scalars (no-ops on other ranks)."""

    def __init__(self, out_dir: Path, enabled: bool, start_iteration: int):
        self.enabled = enabled
        self.writer = None
        self.metrics_path = out_dir / "metrics.jsonl"
        if not enabled:
            return
        if self.metrics_path.exists():  # a resumed run: drop the records a killed run wrote after its checkpoint
            kept = [line for line in self.metrics_path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("iteration", 0) <= start_iteration]
            self.metrics_path.write_text("".join(line + "\n" for line in kept))
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out_dir / "tb"), purge_step=start_iteration + 1 if start_iteration else None)

    def log(self, iteration: int, values: dict, prefix: str = "train") -> None:
        if not self.enabled:
            return
        append_line(self.metrics_path, json.dumps({"iteration": iteration, prefix: values}))
        for name, value in values.items():
            if isinstance(value, (int, float)) and value is not None and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, iteration)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------------------------------- training
def train(
    config: Config, out_dir: str | Path, resume: bool = False, device: str = "auto",
    dataset: Optional[Dataset] = None, collate_fn: Optional[Callable] = None, stop_after: Optional[int] = None,
    progress: bool = True, on_iteration: Optional[Callable[[int, nn.Module], Any]] = None,
) -> TrainResult:
    """Train ``config``'s model into ``out_dir`` (single process, or one rank of a torchrun job).

    Args:
        dataset, collate_fn: training clips (``{"clips": [...], "targets": [...]}`` batches); default: the
            splits of ``config.data``.
        stop_after: stop (after writing ``last.pth``) once this many iterations are done, e.g. to split a long
            run into jobs; ``--resume`` continues it.
        on_iteration: called as ``on_iteration(iteration, model)`` after each optimiser step (tests use it to
            simulate a crash).
    """
    context = dist_utils.init_distributed(device)
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled(),
                     torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        # one run per folder (rank 0 holds the lock); SIGTERM stops after the current iteration
        with locked_run_dir(Path(out_dir), enabled=context.is_main), stop_on_sigterm():
            result = _train(config, Path(out_dir), resume, context, dataset, collate_fn, stop_after, progress,
                            on_iteration)
            # no rank tears the process group down while another still uses it (gloo aborts the process then)
            dist_utils.barrier(context)
        return result
    finally:
        dist_utils.cleanup(context)
        # train.deterministic is process-wide state: give the caller back its own settings
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = deterministic[2:]


def _train(config, out_dir, resume, context, dataset, collate_fn, stop_after, progress, on_iteration):
    from dsfnet.models.build import build_model

    tc = config.train
    # every check that can fail comes before the first write into out_dir
    resume_path = check_run_dir(out_dir, resume)
    checkpoint = load_checkpoint(resume_path) if resume_path is not None else None
    if checkpoint is not None:
        check_compatible(checkpoint, config)
    if dataset is None:
        dataset, collate_fn = build_train_dataset(config)
    val_records, evaluate_model = _periodic_eval_setup(config, context)

    seed_everything(tc.seed, tc.deterministic)  # same initial weights on every rank
    model = build_model(config.model).to(context.device).train()
    optimizer = build_optimizer(model, tc)
    scheduler = build_scheduler(optimizer, tc)
    start = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start = int(checkpoint["iteration"])
        _apply_resumed_lr(optimizer, scheduler, tc, start, checkpoint, context)
        _restore_rng(checkpoint, context, tc.seed)
    else:
        seed_everything(tc.seed + context.rank, False)  # each rank its own RPN / RoI sampling draws
    if context.is_main:  # config.yaml keeps the run's first config; resumes.jsonl what each --resume changed
        record_config(out_dir, config.to_dict(), checkpoint)
    run_log = RunLogger(out_dir, context.is_main, start)
    net = model
    if context.enabled:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    amp = tc.amp and context.device.type == "cuda"
    end = tc.iterations if stop_after is None else min(tc.iterations, stop_after)
    stream = batch_stream(dataset, collate_fn, tc.clips_per_step, start * tc.accumulation_steps, tc.seed, context,
                          config.data.num_workers, pin_memory=context.device.type == "cuda")
    if context.is_main:
        logger.info("training %s (%s) from iteration %d to %d on %d x %s, %d clips per step", config.model.variant,
                    config.model.backbone.name, start, end, context.world_size, context.device,
                    context.world_size * tc.clips_per_step * tc.accumulation_steps)
    bar = _progress_bar(start, tc.iterations, progress and context.is_main)
    window: dict[str, float] = {}
    steps = 0  # optimiser steps in the logging window
    last_metrics: dict = {}
    iteration, tic = start, time.perf_counter()
    try:
        while iteration < end:
            optimizer.zero_grad(set_to_none=True)
            data_time = 0.0
            for micro in range(tc.accumulation_steps):
                data_tic = time.perf_counter()
                epoch, batch = next(stream)
                clips, targets = to_device(batch, context.device)
                data_time += time.perf_counter() - data_tic
                sync = micro == tc.accumulation_steps - 1 or not context.enabled
                with (contextlib.nullcontext() if sync else net.no_sync()), \
                        torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=amp):
                    _, losses = net(clips, targets)
                    loss = sum(losses.values())
                if not torch.isfinite(loss):
                    raise RuntimeError(f"loss is {loss.item()} at iteration {iteration} (rank {context.rank}): "
                                       "lower train.lr, add train.warmup_iterations or set train.clip_grad_norm")
                (loss / tc.accumulation_steps).backward()
                for name, value in [("loss", loss), *losses.items()]:
                    window[name] = window.get(name, 0.0) + value.item() / tc.accumulation_steps
            if tc.clip_grad_norm > 0:
                window["grad_norm"] = window.get("grad_norm", 0.0) + float(
                    nn.utils.clip_grad_norm_(model.parameters(), tc.clip_grad_norm))
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            iteration += 1
            steps += 1
            window["data_time"] = window.get("data_time", 0.0) + data_time
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{window['loss'] / steps:.3f}",
                                lr=f"{lr:.2e}", refresh=False)
            if iteration % tc.log_interval == 0 or iteration == end:
                values = dist_utils.reduce_mean({k: v / steps for k, v in window.items()}, context)
                toc = time.perf_counter()
                values.update(lr=lr, epoch=epoch, time_per_iter=(toc - tic) / steps)
                if context.device.type == "cuda":
                    values["max_memory_mb"] = torch.cuda.max_memory_allocated(context.device) / 2**20
                run_log.log(iteration, values)
                if bar is None and context.is_main:
                    logger.info("iter %d/%d loss %.4f lr %.2e %.3f s/it", iteration, tc.iterations, values["loss"],
                                lr, values["time_per_iter"])
                last_metrics, window, steps, tic = values, {}, 0, toc
            if iteration % tc.checkpoint_interval == 0 or iteration == end:
                _save(out_dir / "last.pth", model, config, iteration, optimizer, scheduler, context)
            if evaluate_model is not None and (iteration % tc.eval_interval == 0 or iteration == tc.iterations):
                _evaluate(model, evaluate_model, val_records, config, context, iteration, run_log)
                tic = time.perf_counter()  # keep evaluation out of time_per_iter
            if on_iteration is not None:
                on_iteration(iteration, model)
            if iteration < end and (signum := stop_requested(context)) is not None:
                if iteration % tc.checkpoint_interval != 0:
                    _save(out_dir / "last.pth", model, config, iteration, optimizer, scheduler, context)
                raise TrainingStopped(signum, iteration)
    finally:
        stream.close()  # shuts loader workers down
        if bar is not None:
            bar.close()
        run_log.close()
    finished = iteration >= tc.iterations
    if finished and context.is_main:
        save_checkpoint(out_dir / "final.pth", training_checkpoint(model, config, iteration)
                        | {"optimizer": None, "scheduler": None, "rng": None})
        logger.info("training finished: %s", out_dir / "final.pth")
    return TrainResult(model, iteration, finished, last_metrics)


def _plain(value: Any) -> Any:
    """Tuples -> lists, for a YAML file that ``load_config`` reads back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _progress_bar(start: int, total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="it", dynamic_ncols=True)


def _save(path, model, config, iteration, optimizer, scheduler, context) -> None:
    """Rank 0 writes the checkpoint; every rank's RNG state goes in it (a collective: all ranks call this)."""
    states = dist_utils.all_gather_object(rng_state(), context) if context.enabled else None
    if context.is_main:
        save_checkpoint(path, training_checkpoint(model, config, iteration, optimizer, scheduler,
                                                  extra={"rng_all_ranks": states, "world_size": context.world_size}))
    dist_utils.barrier(context)


def _apply_resumed_lr(optimizer, scheduler, tc, start: int, checkpoint: dict, context) -> None:
    """The current config's ``train.lr`` / schedule apply from the resumed iteration on (identical values when
    unchanged); changed training settings are reported."""
    saved = checkpoint["config"].get("train", {})
    current = dataclasses.asdict(tc)
    changed = [f"train.{k}: {saved.get(k)!r} -> {v!r}" for k, v in current.items()
               if k in saved and _plain(saved[k]) != _plain(v)]
    if changed and context.is_main:
        logger.warning("resuming with changed training settings: %s", "; ".join(changed))
    scheduler.base_lrs = [tc.lr * group["lr_mult"] for group in optimizer.param_groups]
    for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs):
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


def _periodic_eval_setup(config: Config, context: DistributedContext):
    """``(validation records, evaluate_model)`` on rank 0 when ``train.eval_interval > 0``, else ``(None, None)``."""
    if config.train.eval_interval <= 0:
        return None, None
    try:
        from dsfnet.inference.evaluate import evaluate_model
    except ImportError as error:
        raise RuntimeError(f"train.eval_interval > 0 needs dsfnet.inference.evaluate ({error})") from None
    if not context.is_main:
        return None, evaluate_model
    return read_split_records(config, train=False)[0], evaluate_model


def _evaluate(model, evaluate_model, records, config, context, iteration, run_log) -> None:
    if context.is_main:
        model.eval()
        with torch.no_grad():
            result = evaluate_model(model, records, config, context.device, max_videos=config.train.eval_max_videos)
        model.train()
        values = {"mAP": result.map}
        values.update({f"mAP_{group}": value for group, value in result.motion_map.items()})
        run_log.log(iteration, values, prefix="eval")
        logger.info("iteration %d: validation mAP %s", iteration,
                    "n/a" if result.map is None else f"{result.map:.4f}")
    dist_utils.barrier(context)
