"""DSFNet: Dual Semantic Fusion Network for video object detection (ACM MM 2020).

The public API: the names below, imported on first use (PEP 562), so that ``import dsfnet`` and ``dsfnet --help``
do not import torch::

    import dsfnet
    config = dsfnet.load_config("configs/synth_dsfnet.yaml")
    predictor = dsfnet.VideoPredictor.from_checkpoint(dsfnet.bundled_checkpoint(), score_thresh=0.3)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dsfnet.version import __version__

# public name -> the module that defines it
_PUBLIC = {
    "load_config": "dsfnet.config",
    "Config": "dsfnet.config",
    "ConfigError": "dsfnet.config",
    "build_model": "dsfnet.models.build",
    "load_model": "dsfnet.engine.checkpoint",
    "bundled_checkpoint": "dsfnet.bundled",
    "VideoPredictor": "dsfnet.inference.predictor",
    "FrameResult": "dsfnet.inference.predictor",
    "read_split": "dsfnet.data.split",
    "read_detections": "dsfnet.evaluation.detections",
    "evaluate": "dsfnet.evaluation.vid_map",
}
__all__ = [*sorted(_PUBLIC), "__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names are loaded by __getattr__
    from dsfnet.bundled import bundled_checkpoint
    from dsfnet.config import Config, ConfigError, load_config
    from dsfnet.data.split import read_split
    from dsfnet.engine.checkpoint import load_model
    from dsfnet.evaluation.detections import read_detections
    from dsfnet.evaluation.vid_map import evaluate
    from dsfnet.inference.predictor import FrameResult, VideoPredictor
    from dsfnet.models.build import build_model


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'dsfnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
