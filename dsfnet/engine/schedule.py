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


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum and weight decay over the trainable parameters (frozen stages are skipped).

    Three parameter groups: frame-level fusion at ``lr × frame_fusion_lr_mult``, instance-level fusion at
    ``lr × instance_fusion_lr_mult`` and everything else at ``lr`` (empty groups are left out); each group
    records its ``lr_mult`` so that schedules and resumed runs keep the ratio.
    """
    mults = {"frame_fusion.": config.frame_fusion_lr_mult, "instance_fusions.": config.instance_fusion_lr_mult,
             "": 1.0}
    groups: dict[str, list] = {prefix: [] for prefix in mults}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups[next(prefix for prefix in mults if name.startswith(prefix))].append(param)
    param_groups = [{"params": groups[prefix], "lr": config.lr * mult, "lr_mult": mult}
                    for prefix, mult in mults.items() if groups[prefix]]
    return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` stepping once per optimiser step with :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: lr_factor(iteration, config))
