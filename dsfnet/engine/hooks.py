"""What the training loop does around its steps: progress bar, metrics log, checkpoints, periodic evaluation.

Each is a :class:`Hook` that :class:`~dsfnet.engine.trainer.Trainer` calls (in the order given) before the
loop, before and after every optimiser step, and once when the loop ends; a test or a user adds behaviour by
passing hooks of its own. A hook is given the intervals it works at when it is built (:func:`default_hooks`
reads them from the config). Evaluation is a callable handed in from outside (``(model, context) -> {metric:
value}``), so the engine does not depend on the inference code.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn
from tqdm import tqdm

from dsfnet.atomic import append_line
from dsfnet.config import TrainConfig
from dsfnet.engine import distributed as dist_utils
from dsfnet.engine.curves import plot_curves

logger = logging.getLogger(__name__)

#: ``(model, context) -> {"mAP": ..., ...}``: a periodic evaluation, called on every rank (each does its share of
#: the work; all return the same values); it leaves the model's mode as it was
Evaluation = Callable[[nn.Module, dist_utils.DistributedContext], dict]


class Hook:
    """Called by the trainer before the loop, before and after each optimiser step, and after the loop (also
    when it ends by an error).

    ``trainer`` is the :class:`~dsfnet.engine.trainer.Trainer` (named as a string: the trainer imports this
    module); hooks read its ``context``, ``model``, ``iteration`` (steps done), ``end`` and ``last_step`` and may
    call its ``save(path)``.
    """

    def before_train(self, trainer: "Trainer") -> None:
        pass

    def before_step(self, trainer: "Trainer") -> None:
        pass

    def after_step(self, trainer: "Trainer") -> None:
        pass

    def after_train(self, trainer: "Trainer") -> None:
        pass


class RunLog:
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
        from torch.utils.tensorboard import SummaryWriter  # heavy (TensorBoard): only where something is written

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


class ProgressBar(Hook):
    """A tqdm bar over all ``total`` iterations of the run (rank 0), showing the loss averaged since the last
    multiple of ``interval`` and the learning rate."""

    def __init__(self, start: int, total: int, interval: int):
        self.bar = tqdm(total=total, initial=start, desc="train", unit="it", dynamic_ncols=True)
        self.interval = interval
        self.loss, self.steps = 0.0, 0

    def after_step(self, trainer: "Trainer") -> None:
        step = trainer.last_step
        self.loss, self.steps = self.loss + step["loss"], self.steps + 1
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{self.loss / self.steps:.3f}", lr=f"{step['lr']:.2e}", refresh=False)
        if trainer.iteration % self.interval == 0:
            self.loss, self.steps = 0.0, 0

    def after_train(self, trainer: "Trainer") -> None:
        self.bar.close()


class MetricsLog(Hook):
    """Every ``interval`` steps (and at the run's last): the window's mean losses and attention statistics,
    averaged over ranks, with ``lr``, ``epoch``, ``time_per_iter`` (training steps only) and the peak CUDA memory,
    into the run log; with ``log_lines`` also a log line (``iter i/iterations``)."""

    def __init__(self, run_log: RunLog, *, interval: int, iterations: int, log_lines: bool):
        self.run_log, self.interval, self.iterations, self.log_lines = run_log, interval, iterations, log_lines
        self.window: dict[str, float] = {}
        self.steps = 0
        self.last: dict = {}

    def after_step(self, trainer: "Trainer") -> None:
        step = trainer.last_step
        for name in ("step_time", *[name for name in step if name not in ("lr", "epoch", "step_time")]):
            self.window[name] = self.window.get(name, 0.0) + step[name]
        self.steps += 1
        if trainer.iteration % self.interval and trainer.iteration != trainer.end:
            return
        step_time = self.window.pop("step_time")
        values = dist_utils.reduce_mean({k: v / self.steps for k, v in self.window.items()}, trainer.context)
        values.update(lr=step["lr"], epoch=step["epoch"], time_per_iter=step_time / self.steps)
        if trainer.context.device.type == "cuda":
            values["max_memory_mb"] = torch.cuda.max_memory_allocated(trainer.context.device) / 2**20
        self.run_log.log(trainer.iteration, values)
        if self.log_lines:
            logger.info("iter %d/%d loss %.4f lr %.2e %.3f s/it", trainer.iteration, self.iterations,
                        values["loss"], step["lr"], values["time_per_iter"])
        self.last, self.window, self.steps = values, {}, 0

    def after_train(self, trainer: "Trainer") -> None:
        self.run_log.close()


class PeriodicCheckpoint(Hook):
    """The training checkpoint ``path`` every ``interval`` steps and at the last step of the run."""

    def __init__(self, path: Path, interval: int):
        self.path, self.interval = path, interval

    def after_step(self, trainer: "Trainer") -> None:
        if trainer.iteration % self.interval == 0 or trainer.iteration == trainer.end:
            trainer.save(self.path)


class PeriodicEvaluation(Hook):
    """Every ``interval`` steps and at the end of training (step ``iterations``): ``evaluation(model, context)``
    of the weights the run produces (:meth:`Trainer.result_model`: the moving average with ``train.ema_decay``)
    on every rank (each validates its share of the videos, not rank 0 alone while the others wait), logged by
    rank 0 under ``eval``."""

    def __init__(self, evaluation: Evaluation, run_log: RunLog, *, interval: int, iterations: int):
        self.evaluation, self.run_log, self.interval, self.iterations = evaluation, run_log, interval, iterations

    def after_step(self, trainer: "Trainer") -> None:
        if trainer.iteration % self.interval and trainer.iteration != self.iterations:
            return
        values = self.evaluation(trainer.result_model(), trainer.context)
        if trainer.context.is_main:
            self.run_log.log(trainer.iteration, values, prefix="eval")
            score = values.get("mAP")
            # text in percent with one decimal, like the reports; metrics.jsonl and TensorBoard keep fractions
            logger.info("iteration %d: validation mAP %s", trainer.iteration,
                        "n/a" if score is None else f"{100 * score:.1f} %")
        dist_utils.barrier(trainer.context)


class TrainingCurves(Hook):
    """Rank 0 writes ``curves.png`` (:func:`~dsfnet.engine.curves.plot_curves`) into the run folder after the
    loop, however it ended (also SIGTERM and Ctrl-C)."""

    def after_train(self, trainer: "Trainer") -> None:
        if not trainer.context.is_main:
            return
        try:
            plot_curves(trainer.out_dir / "metrics.jsonl", trainer.out_dir / "curves.png")
        except (OSError, ValueError) as error:  # a plot must not hide the error that ended training
            logger.warning("could not write %s: %s", trainer.out_dir / "curves.png", error)


def default_hooks(*, out_dir: Path, context: dist_utils.DistributedContext, train: TrainConfig, start: int,
                  progress: bool, evaluation: Optional[Evaluation]) -> list[Hook]:
    """Progress bar (rank 0, when ``progress``), metrics log, ``last.pth`` checkpoints, when given periodic
    evaluation, at ``train``'s intervals, for a run that starts at iteration ``start``; ``curves.png`` at the end."""
    run_log = RunLog(out_dir, context.is_main, start)
    show_bar = progress and context.is_main
    hooks: list[Hook] = [ProgressBar(start, train.iterations, train.log_interval)] if show_bar else []
    hooks += [MetricsLog(run_log, interval=train.log_interval, iterations=train.iterations,
                         log_lines=not show_bar and context.is_main),
              PeriodicCheckpoint(out_dir / "last.pth", train.checkpoint_interval)]
    if evaluation is not None and train.eval_interval > 0:
        hooks.append(PeriodicEvaluation(evaluation, run_log, interval=train.eval_interval,
                                        iterations=train.iterations))
    return hooks + [TrainingCurves()]
