"""Build a :class:`DSFNet` (any ablation variant) from a :class:`ModelConfig`."""

from __future__ import annotations

from dsfnet.config import ModelConfig
from dsfnet.models.backbone import build_backbone
from dsfnet.models.detector import DSFNet
from dsfnet.models.fusion import FrameFusion, InstanceFusion
from dsfnet.models.heads import RoIBoxHead
from dsfnet.models.roi import RoIBoxes
from dsfnet.models.rpn import ClipRPN


def build_model(config: ModelConfig) -> DSFNet:
    """The variant named by ``config.variant``: baseline, frame, instance or dsfnet."""
    backbone = build_backbone(config.backbone)
    frame_fusion = None
    if config.uses_frame_fusion:
        frame_fusion = FrameFusion(
            backbone.conv4_channels, config.frame_fusion.scale_by_sqrt_hw, config.frame_fusion.chunk_size,
            config.frame_fusion.normalize_tokens)
    instance_fusions = None
    fusion = config.instance_fusion
    if config.uses_instance_fusion:
        instance_fusions = tuple(
            InstanceFusion(config.roi.representation_size, fusion.num_heads, fusion.key_dim, fusion.geometry,
                           fusion.embed_freqs, fusion.eps, fusion.chunk_size)
            for _ in range(2)
        )
    return DSFNet(
        config.num_classes, backbone, ClipRPN.from_config(config.rpn, backbone.conv4_channels),
        RoIBoxHead(config.roi, backbone.conv5_channels, config.num_classes), RoIBoxes(config.roi), frame_fusion,
        instance_fusions, fusion.support_proposals, config.pixel_mean, config.pixel_std,
    )
