"""The moving average of the weights: parameters averaged, buffers the live model's, state round-trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dsfnet.engine.weight_average import WeightAverage


def test_parameters_are_averaged_and_buffers_are_the_live_models():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    average = WeightAverage(model, decay=0.75)
    first = model[0].weight.detach().clone()
    average.update()  # the first update copies
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(5.0)  # a buffer changed by the live model (not averaged)
    average.update()
    averaged = average.module()
    assert torch.allclose(averaged[0].weight, 0.75 * first + 0.25 * (first + 1.0))
    assert torch.equal(averaged[1].running_mean, torch.full((2,), 5.0))
    assert averaged is not model and model[0].weight is not averaged[0].weight


def test_state_round_trips_into_a_fresh_average():
    model = nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.5)
    for _ in range(3):
        average.update()
        with torch.no_grad():
            model.weight.mul_(2.0)
    restored = WeightAverage(model, decay=0.5)
    restored.load_state_dict(average.state_dict())
    average.update()
    restored.update()  # continues the average rather than copying the weights again
    assert torch.equal(restored.module().weight, average.module().weight)
    assert not torch.equal(restored.module().weight, model.weight)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_the_open_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(nn.Linear(1, 1), decay)
