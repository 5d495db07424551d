"""Recipe 1 (docs/EXTENDING.md): a backbone of five plain convolutions, stride 16."""

from torch import nn

from dsfnet.config import BackboneConfig
from dsfnet.errors import ConfigError
from dsfnet.models.backbone import Backbone
from dsfnet.registry import BACKBONES


def _conv(inputs: int, outputs: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, stride, 1), nn.GroupNorm(4, outputs), nn.ReLU(inplace=True))


@BACKBONES.register("toy_convnet")
def build_toy_convnet(config: BackboneConfig) -> Backbone:
    """conv4: four stride-2 convolutions ([n, 3, H, W] -> [n, 4w, H/16, W/16]); conv5: one more at stride 1."""
    if config.weights is not None:
        raise ConfigError("toy_convnet has no pretrained weights: leave model.backbone.weights empty")
    w = config.tiny_width
    conv4 = nn.Sequential(_conv(3, w, 2), _conv(w, 2 * w, 2), _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w, 2))
    return Backbone(conv4, _conv(4 * w, 8 * w, 1), conv4_channels=4 * w, conv5_channels=8 * w,
                    early_stages=(conv4[0], conv4[1]))
