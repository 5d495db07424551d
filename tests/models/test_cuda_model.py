"""Every variant on the GPU under bf16 autocast, training and each inference path (``cuda`` tests).

CUDA's autocast casts other operations than the CPU's (softmax, sums, group norm and the losses run in float32
there, convolutions and matmuls in bf16): these run the CPU tests' checks where the paper configs run.
"""

from __future__ import annotations

import pytest
import torch

from dsfnet.config import VARIANTS
from dsfnet.models.build import build_model

pytestmark = pytest.mark.cuda


def _model(tiny_config, variant: str, device: torch.device) -> torch.nn.Module:
    """The tiny model with its zero-initialised fusion outputs (θ, γ) drawn at random, so that fusing changes
    the result."""
    torch.manual_seed(0)
    model = build_model(tiny_config(f"model.variant={variant}").model)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".theta." in name or ".gamma." in name:
                parameter.normal_(0.0, 0.05)
    return model.to(device)


def _clip(device: torch.device, frames: int) -> tuple[torch.Tensor, dict]:
    """``frames`` frames ``[3, 160, 224]`` of a bright box drifting over dim noise, and frame 0's target."""
    clip = torch.rand(frames, 3, 160, 224, generator=torch.Generator().manual_seed(0)) * 0.3
    for t in range(frames):
        clip[t, :, 30 + 2 * t : 90 + 2 * t, 40 + 3 * t : 110 + 3 * t] = 0.9
    target = {"boxes": torch.tensor([[40.0, 30.0, 109.0, 89.0]]), "labels": torch.tensor([4])}
    return clip.to(device), {name: value.to(device) for name, value in target.items()}


def _bf16_convolutions(model: torch.nn.Module) -> set:
    """Output dtypes of the backbone's first convolution, filled as the model runs."""
    seen: set = set()
    conv = next(module for module in model.backbone.modules() if isinstance(module, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    return seen


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_step_under_bf16_autocast(gpu, tiny_config, variant):
    model = _model(tiny_config, variant, gpu).train()
    seen = _bf16_convolutions(model)
    clip, target = _clip(gpu, frames=3)
    with torch.autocast(gpu.type, dtype=torch.bfloat16):
        _, losses = model(clip, [target])
        loss = sum(losses.values())
    assert seen == {torch.bfloat16}
    assert all(value.dtype == torch.float32 and torch.isfinite(value) for value in losses.values()), losses
    loss.backward()
    gradients = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(grad).all() for grad in gradients.values())
    fused = [name for name in gradients if "fusion" in name and gradients[name].abs().sum() > 0]
    assert bool(fused) == (variant != "baseline")  # the fusions are on the gradient's way


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_inference_path_under_bf16_autocast_gives_float32_boxes(gpu, tiny_config, variant):
    """The full forward, ``exact``, ``cached`` (with and without one memory frame) and the causal
    ``detect_and_remember``: finite float32 boxes and scores inside the image."""
    model = _model(tiny_config, variant, gpu).eval()
    clip, _ = _clip(gpu, frames=4)
    size = tuple(clip.shape[-2:])
    with torch.no_grad(), torch.autocast(gpu.type, dtype=torch.bfloat16):
        conv4 = model.conv4(clip)
        memory = model.support_memory(conv4[:3], size)
        outputs = {"forward": model(clip, key=3)[0][0], "exact": model.detect_exact(conv4, size, key=3),
                   "cached": model.detect_cached(conv4[3:], size, memory),
                   "cached without frame 1": model.detect_cached(conv4[3:], size, memory, exclude=1),
                   "detect_and_remember": model.detect_and_remember(conv4[3:], size, memory)[0]}
    assert conv4.dtype == torch.bfloat16
    for path, detections in outputs.items():
        boxes, scores = detections["boxes"], detections["scores"]
        assert boxes.dtype == scores.dtype == torch.float32, path
        assert len(scores) and torch.isfinite(boxes).all() and torch.isfinite(scores).all(), path
        assert (boxes >= 0).all() and (boxes[:, 2] <= size[1]).all() and (boxes[:, 3] <= size[0]).all(), path
