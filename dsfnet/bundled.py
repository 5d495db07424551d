"""The checkpoints that ship with the package (``dsfnet/assets``), by backbone and variant; imports no torch.

Both pairs were trained on ``dsfnet synth`` data (seed 0) and exported in fp16 with all their weights:
``light``, the ImageNet-initialised EfficientNet-Lite0 of ``configs/synth_light_*.yaml`` (the demo's default: the
baseline and DSFNet of training seed 7 of the paired ablation, ``benchmarks/ablation.py --protocol finetune``),
and ``tiny``, the tiny ResNet trained from scratch of ``configs/synth_*.yaml`` by an earlier version of the code.
"""

from __future__ import annotations

from pathlib import Path

from dsfnet.errors import InputError

ASSETS = Path(__file__).resolve().parent / "assets"
BUNDLED = {
    "light": {"baseline": ASSETS / "synth_light_baseline.pt", "dsfnet": ASSETS / "synth_light_dsfnet.pt"},
    "tiny": {"baseline": ASSETS / "synth_baseline.pt", "dsfnet": ASSETS / "synth_dsfnet.pt"},
}
DEFAULT_BACKBONE = "light"


def bundled_checkpoint(variant: str = "dsfnet", backbone: str = DEFAULT_BACKBONE) -> Path:
    """Path of a bundled checkpoint, loadable with :func:`dsfnet.load_model` or ``dsfnet detect --weights``.

    Args:
        variant: ``"dsfnet"`` or ``"baseline"``.
        backbone: ``"light"`` (EfficientNet-Lite0, the default) or ``"tiny"`` (a tiny ResNet).
    """
    if backbone not in BUNDLED:
        raise InputError(f"unknown bundled backbone {backbone!r}; choose one of {', '.join(BUNDLED)}")
    if variant not in BUNDLED[backbone]:
        raise InputError(f"no bundled {variant!r} checkpoint; choose one of {', '.join(BUNDLED[backbone])}")
    return BUNDLED[backbone][variant]
