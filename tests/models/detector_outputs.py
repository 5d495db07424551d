"""The detector's outputs on fixed weights and inputs, recorded so that a refactoring can show it changed none.

``record()`` builds one tiny model per variant (seeded, fusion value projections randomised so that fusion acts),
and collects, per variant: the losses, attention statistics and per-parameter gradient sums of one training
step on two clips; the detections of ``exact`` inference (the model's forward in eval mode and
:meth:`DSFNet.detect_exact`), of ``cached`` inference (a support memory built once, read with and without an
excluded frame) and of causal inference (each frame remembered and joined into the next one's memory).
``tests/models/test_detector_outputs.py`` compares them with ``data/detector_outputs.pt``, written by::

    PYTHONPATH=. python tests/models/detector_outputs.py   # only when an output is meant to change
"""

from __future__ import annotations

from pathlib import Path

import torch

from dsfnet.config import VARIANTS, load_config
from dsfnet.models.build import build_model
from dsfnet.models.detector import SupportMemory

RECORDED = Path(__file__).parent / "data" / "detector_outputs.pt"
TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
# fewer support proposals than the RPN keeps, so that a support frame's proposals are cut (DESIGN §2.2)
OVERRIDES = ("model.instance_fusion.support_proposals=12", "model.instance_fusion.chunk_size=16",
             "model.frame_fusion.chunk_size=5")


def build(variant: str) -> torch.nn.Module:
    """The tiny model of ``variant`` under seed 0, with random θ / γ, classifier and box regressor (fusion is not the identity)."""
    torch.manual_seed(0)
    model = build_model(load_config(TINY, [f"model.variant={variant}", *OVERRIDES]).model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".theta." in name or ".gamma." in name or name.startswith(("box_head.cls_score", "box_head.bbox_pred")):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


def clips(count: int = 2, frames: int = 4, height: int = 96, width: int = 128) -> tuple[torch.Tensor, list[dict]]:
    """``[count, frames, 3, H, W]`` clips of squares that move over noise, and the targets of frame 0."""
    generator = torch.Generator().manual_seed(2)
    video = torch.rand(count, frames, 3, height, width, generator=generator) * 0.3
    targets = []
    for c in range(count):
        for f in range(frames):
            x, y = 20 + 10 * c + 3 * f, 15 + 2 * f
            video[c, f, :, y : y + 36, x : x + 40] = torch.tensor([0.9, 0.6, 0.1]).view(3, 1, 1)
        targets.append({"boxes": torch.tensor([[20.0 + 10 * c, 15.0, 60.0 + 10 * c, 51.0]]),
                        "labels": torch.tensor([3 + c])})
    return video, targets


def training_step(model: torch.nn.Module) -> dict:
    """Losses, attention statistics and gradient sums of one step (key frame 1 of each clip)."""
    video, targets = clips()
    model.train()
    torch.manual_seed(3)  # the RPN / RoI samplers draw from the global generator
    _, losses = model(video, targets, key=1)
    sum(losses.values()).backward()
    gradients = {name: parameter.grad.double().sum() for name, parameter in model.named_parameters()
                 if parameter.grad is not None}
    model.zero_grad(set_to_none=True)
    return {"losses": {name: value.detach() for name, value in losses.items()},
            "attention": model.pop_attention_statistics(), "gradients": gradients}


@torch.no_grad()
def inference(model: torch.nn.Module) -> dict:
    """Detections of the ``exact``, ``cached`` and causal paths on the first clip."""
    model.eval()
    video, _ = clips()
    clip, size = video[0], tuple(video.shape[-2:])
    conv4 = model.conv4(clip)  # [4, d, h, w]
    memory = model.support_memory(conv4[1:], size)
    causal, remembered = [], []
    for t in range(len(conv4)):
        joined = SupportMemory.join(remembered)
        detections, own = model.detect_and_remember(conv4[t : t + 1], size, joined)
        causal.append(detections)
        remembered.append(own)
    return {
        "forward": model(video, key=-1)[0],
        "exact": model.detect_exact(conv4, size, key=2),
        "cached": model.detect_cached(conv4[:1], size, memory),
        "cached_exclude": model.detect_cached(conv4[2:3], size, memory, exclude=1),
        "cached_alone": model.detect_cached(conv4[:1], size),
        "causal": causal,
    }


def record() -> dict:
    """Every output above, per variant."""
    return {variant: {"train": training_step(build(variant)), "inference": inference(build(variant))}
            for variant in VARIANTS}


if __name__ == "__main__":
    torch.set_num_threads(2)
    RECORDED.parent.mkdir(exist_ok=True)
    torch.save(record(), RECORDED)
    print(f"{RECORDED}: {RECORDED.stat().st_size} bytes")
