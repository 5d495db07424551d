"""No tensor of the model's passes is created on the default device: every one is made on (or moved to) the
device of the data, so that nothing lands on the CPU while the model runs on a GPU (checked on the CPU by
watching where dsfnet's own code calls torch's factory functions)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.overrides import TorchFunctionMode

import dsfnet
from dsfnet.inference.predictor import VideoPredictor
from dsfnet.models.build import build_model

PACKAGE = str(Path(dsfnet.__file__).parent)
#: torch functions that make a new tensor on the default device unless told ``device=``
FACTORIES = {torch.tensor, torch.as_tensor, torch.arange, torch.zeros, torch.ones, torch.empty, torch.full,
             torch.rand, torch.randn, torch.randint, torch.randperm, torch.linspace, torch.eye}


class FactoryCalls(TorchFunctionMode):
    """Records ``file:line`` of every call of a :data:`FACTORIES` function without ``device=`` made directly by
    dsfnet's code (``torch.as_tensor`` of a tensor keeps that tensor's device and is not one)."""

    def __init__(self):
        super().__init__()
        self.found: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None and not (args and isinstance(args[0], torch.Tensor)):
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(PACKAGE):
                self.found.add(f"{Path(caller.f_code.co_filename).relative_to(PACKAGE)}:{caller.f_lineno}")
        return func(*args, **kwargs)


def test_the_watch_sees_a_factory_call_without_device():
    with FactoryCalls() as calls:  # code compiled as if it were a file of the package
        exec(compile("import torch\ntorch.zeros(2)\ntorch.zeros(2, device='cpu')", f"{PACKAGE}/probe.py", "exec"))
    assert calls.found == {"probe.py:2"}


@pytest.mark.parametrize("variant", ["frame", "dsfnet"])  # the others' passes are parts of these
def test_model_passes_make_their_tensors_on_the_data_device(tiny_config, variant, tmp_path):
    """Training, ``cached``, ``exact`` and causal inference."""
    torch.manual_seed(0)
    config = tiny_config(f"model.variant={variant}")
    model = build_model(config.model)
    clip = torch.rand(3, 3, 64, 96)
    target = {"boxes": torch.tensor([[30.0, 20.0, 73.0, 59.0]]), "labels": torch.tensor([5])}
    frames = [(np.random.default_rng(i).random((64, 96, 3)) * 255).astype(np.uint8) for i in range(4)]
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{index:06d}.png")
    with FactoryCalls() as calls:
        _, losses = model.train()(clip, [target])
        sum(losses.values()).backward()
        for sampling, mode in (("shuffled", "cached"), ("shuffled", "exact"), ("causal", "cached")):
            predictor = VideoPredictor(model, config, num_frames=3, sampling=sampling, mode=mode, keep_images=False)
            list(predictor.stream(frames) if sampling == "causal" else predictor.predict(str(tmp_path)))
    assert not calls.found, f"tensors made on the default device at {sorted(calls.found)}"
