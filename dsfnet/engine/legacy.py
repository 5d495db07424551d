"""Upgrades of checkpoints written by earlier dsfnet versions, applied by ``load_checkpoint`` on every load.

EfficientNet-Lite0 (``model.backbone.name: efficientnet_lite0``) was a hand-written module until it became timm's
``tf_efficientnet_lite0`` (``timm:tf_efficientnet_lite0``): same tensors, same shapes, same order, same outputs
(``tests/models/test_timm_backbone.py``), other key names. The old backbone keys are renamed by position.
"""

from __future__ import annotations

from dsfnet.config import BackboneConfig
from dsfnet.models.backbone import build_backbone
from dsfnet.models.timm_backbone import PACKAGE_MODEL, PREFIX, rename_by_position

LEGACY_EFFICIENTNET = "efficientnet_lite0"
_BACKBONE = "backbone."


def upgrade_checkpoint(checkpoint: dict, name: str) -> None:
    """Rewrite, in place, a checkpoint of a retired backbone module to today's names (``name``: for errors).

    Raises:
        ValueError: naming ``name``, when its backbone tensors do not match the new module's.
    """
    backbone = checkpoint["config"].get("model", {}).get("backbone", {})
    if backbone.get("name") != LEGACY_EFFICIENTNET:
        return
    backbone["name"] = PREFIX + PACKAGE_MODEL
    config = BackboneConfig(name=backbone["name"], norm=backbone.get("norm", "frozen_bn"), weights=None,
                            freeze_stem_and_conv2=False)
    reference = build_backbone(config).state_dict()
    model = checkpoint["model"]
    old = {key[len(_BACKBONE):]: value for key, value in model.items() if key.startswith(_BACKBONE)}
    renamed = iter(rename_by_position(old, reference, f"{name} (backbone {LEGACY_EFFICIENTNET})").items())
    # the backbone's keys keep their places among the model's: the optimiser state is indexed by position
    upgraded = {}
    for key, value in model.items():
        if key.startswith(_BACKBONE):
            new_key, value = next(renamed)
            key = _BACKBONE + new_key
        upgraded[key] = value
    checkpoint["model"] = upgraded
