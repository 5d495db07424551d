"""The RoI box head (reduce conv, RoIAlign, fc6, fc7, predictor) on conv5, from torchvision blocks."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from dsfnet.config import RoIHeadConfig

#: pixels per conv4 / conv5 cell (the backbone's stride at conv4; conv5 is dilated, DESIGN §2)
FEATURE_STRIDE = 16


class RoIBoxHead(nn.Module):
    """conv5 -> 1x1 reduction -> RoIAlign -> fc6 (fc7 and the predictor are applied by the detector).

    The detector calls the module (fc6 features of RoIs, a module call so that forward hooks see the RoIs), then
    the first instance fusion, :meth:`fc7_features`, the second fusion and :meth:`predict`, so that the fusions
    sit between the fully connected layers (DESIGN §2).
    """

    def __init__(self, config: RoIHeadConfig, in_channels: int, num_classes: int):
        super().__init__()
        self.pool_size = config.pool_size
        self.sampling_ratio = config.sampling_ratio
        self.reduce = nn.Conv2d(in_channels, config.reduced_channels, 1)
        self.fc6 = nn.Linear(config.reduced_channels * config.pool_size ** 2, config.representation_size)
        self.fc7 = nn.Linear(config.representation_size, config.representation_size)
        self.cls_score = nn.Linear(config.representation_size, num_classes + 1)
        self.bbox_pred = nn.Linear(config.representation_size, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, conv5: Tensor, boxes: list[Tensor]) -> Tensor:
        """conv5 ``[r, C5, h, w]`` and boxes ``[p_i, 4]`` per frame -> ``[sum p_i, representation_size]``."""
        reduced = F.relu(self.reduce(conv5))
        pooled = roi_align(reduced, boxes, self.pool_size, 1.0 / FEATURE_STRIDE, self.sampling_ratio)
        return F.relu(self.fc6(pooled.flatten(1)))

    def fc7_features(self, features: Tensor) -> Tensor:
        """``[m, D] -> [m, D]``."""
        return F.relu(self.fc7(features))

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``[m, D]`` -> class logits ``[m, C+1]``, class-specific box deltas ``[m, 4(C+1)]``."""
        return self.cls_score(features), self.bbox_pred(features)
