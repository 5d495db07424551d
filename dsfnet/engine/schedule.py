"""Learning-rate schedule and optimiser of the paper's recipe (DESIGN §3): SGD, step decay, optional warm-up."""

from __future__ import annotations

from bisect import bisect_right

import torch
from torch import nn

from dsfnet.config import TrainConfig


def lr_factor(iteration: int, config: TrainConfig) -> float:
    """Multiplier of ``config.lr`` for optimiser step ``iteration`` (0-based).

    ``lr_gamma ** (number of lr_steps <= iteration)``, times a linear warm-up from ``warmup_factor`` to 1 over
    the first ``warmup_iterations`` steps. A function of the iteration alone, so a resumed run needs no state.
    """
    factor = config.lr_gamma ** bisect_right(sorted(config.lr_steps), iteration)
    if iteration < config.warmup_iterations:
        alpha = iteration / config.warmup_iterations
        factor *= config.warmup_factor * (1 - alpha) + alpha
    return factor


FUSION_PREFIXES = ("frame_fusion.", "instance_fusions.")


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum and weight decay over the trainable parameters (frozen stages are skipped).

    Two parameter groups: the fusion modules, at ``lr × fusion_lr_mult``, and everything else at ``lr``; each
    group records its ``lr_mult`` so that schedules and resumed runs keep the ratio.
    """
    groups = {True: [], False: []}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups[name.startswith(FUSION_PREFIXES)].append(param)
    param_groups = [{"params": params, "lr": config.lr * mult, "lr_mult": mult}
                    for params, mult in ((groups[False], 1.0), (groups[True], config.fusion_lr_mult)) if params]
    return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` stepping once per optimiser step with :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: lr_factor(iteration, config))
