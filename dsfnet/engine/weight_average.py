"""An exponential moving average of a model's weights during training (``train.ema_decay``).

After every optimiser step ``average = decay · average + (1 − decay) · weights`` (the first step copies the
weights), kept by :class:`torch.optim.swa_utils.AveragedModel`: an average over about the last
``1 / (1 − decay)`` steps instead of the last step's weights, which move with the last steps' gradient noise.
(It did not make the paired ablation's runs repeat across thread counts: docs/results.md, "A moving average of
the weights".) Only parameters are averaged: buffers (frozen BatchNorm statistics) are the live model's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """The exponential moving average of ``model``'s parameters (``model`` unwrapped, not DDP).

    Args:
        model: the model being trained; :meth:`update` reads its current parameters.
        decay: in (0, 1); an average over about ``1 / (1 − decay)`` steps.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.model = model
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))

    def update(self) -> None:
        """Fold the model's current parameters into the average (after an optimiser step)."""
        self.average.update_parameters(self.model)

    @torch.no_grad()
    def module(self) -> nn.Module:
        """The averaged model (a copy of the model's architecture) with the live model's buffers."""
        for averaged, live in zip(self.average.module.buffers(), self.model.buffers()):
            averaged.copy_(live)
        return self.average.module

    def state_dict(self) -> dict:
        """What a training checkpoint keeps to resume the average: its weights and how many steps it holds."""
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)
