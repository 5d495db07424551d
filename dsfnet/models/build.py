"""Build a :class:`DSFNet` (any ablation variant) from a :class:`ModelConfig`."""

from __future__ import annotations

import torch

from dsfnet.config import ModelConfig
from dsfnet.models.backbone import build_backbone
from dsfnet.models.detector import DSFNet
from dsfnet.models.fusion import FrameFusion, InstanceFusion
from dsfnet.models.heads import RoIBoxHead
from dsfnet.models.roi import RoIBoxes
from dsfnet.models.rpn import ClipRPN


def build_model(config: ModelConfig) -> DSFNet:
    """The variant named by ``config.variant``: baseline, frame, instance or dsfnet.

    The parts every variant has (backbone, RPN, RoI head) are built first and the fusions after them from a
    forked random state, so that under one seed all four variants start with identical shared weights and
    leave the global random state as the baseline does (the ablation's seeds are then paired).
    """
    backbone = build_backbone(config.backbone)
    rpn = ClipRPN.from_config(config.rpn, backbone.conv4_channels)
    box_head = RoIBoxHead(config.roi, backbone.conv5_channels, config.num_classes)
    with torch.random.fork_rng(devices=[]):
        frame_fusion, instance_fusions = _build_fusions(config, backbone.conv4_channels)
    fusion = config.instance_fusion
    return DSFNet(
        num_classes=config.num_classes, backbone=backbone, rpn=rpn, box_head=box_head, roi=RoIBoxes(config.roi),
        frame_fusion=frame_fusion, instance_fusions=instance_fusions, support_proposals=fusion.support_proposals,
        pixel_mean=config.pixel_mean, pixel_std=config.pixel_std,
    )


def _build_fusions(config: ModelConfig, conv4_channels: int
                   ) -> tuple[FrameFusion | None, tuple[InstanceFusion, InstanceFusion] | None]:
    """The variant's frame fusion and its two instance fusions (``None`` where the variant has none)."""
    frame_fusion = None
    if config.uses_frame_fusion:
        frame = config.frame_fusion
        frame_fusion = FrameFusion(conv4_channels, frame.scale_by_sqrt_hw, frame.chunk_size, frame.normalize_tokens,
                                   frame.identity_projections, frame.value_init, frame.subtract_own_value,
                                   frame.same_channel)
    instance_fusions = None
    fusion = config.instance_fusion
    if config.uses_instance_fusion:
        instance_fusions = tuple(
            InstanceFusion(config.roi.representation_size, fusion.num_heads, fusion.key_dim, fusion.geometry,
                           fusion.embed_freqs, fusion.eps, fusion.chunk_size, logits=fusion.logits,
                           layer_norm=fusion.layer_norm, init_std=fusion.init_std)
            for _ in range(2)
        )
    return frame_fusion, instance_fusions
