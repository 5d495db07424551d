"""ResNet backbones split at conv4 / conv5, with dilated conv5 (total stride 16); ``timm:<model>`` names build
timm's models cut the same way (:mod:`dsfnet.models.timm_backbone`).

Every backbone is a :class:`Backbone` built by a function registered in :data:`dsfnet.registry.BACKBONES` under
the name ``model.backbone.name`` takes; :func:`build_backbone` checks the settings every backbone shares, calls the
builder and freezes the early stages. ``docs/EXTENDING.md`` shows how to add one.

``Backbone.conv4`` maps ``[n, 3, H, W]`` normalised frames to ``[n, d, ceil(H/16), ceil(W/16)]`` (d = 1024 for
ResNet-50/101 and ResNeXt-101); ``Backbone.conv5`` maps those maps to ``[n, 2048, h, w]`` at the same stride, every
3x3 conv of conv5 dilated by 2.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

import torchvision.models
from torch import nn
from torchvision.models import resnet
from torchvision.ops import FrozenBatchNorm2d

from dsfnet.config import BackboneConfig
from dsfnet.errors import ConfigError, InputError, InputNotFound, Unavailable
from dsfnet.models import timm_backbone
from dsfnet.registry import BACKBONES
from dsfnet.torch_files import load_torch_file

# name -> (block depths, groups, width per group)
_ARCHITECTURES = {
    "resnet50": ([3, 4, 6, 3], 1, 64),
    "resnet101": ([3, 4, 23, 3], 1, 64),
    "resnext101_32x4d": ([3, 4, 23, 3], 32, 4),
}
# name -> torchvision builder whose ImageNet weights match the architecture (None: torchvision has none)
_TORCHVISION_WEIGHTS = {"resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights", "resnext101_32x4d": None}
#: total stride of conv4 and conv5 (the RPN's anchors and the RoI pooling scale assume it)
STRIDE = 16


def _norm_layer(kind: str) -> Callable[[int], nn.Module]:
    if kind == "frozen_bn":
        return FrozenBatchNorm2d
    if kind == "batch_norm":
        return nn.BatchNorm2d
    # GroupNorm keeps from-scratch training stable with one clip per step (DESIGN §2)
    return lambda channels: nn.GroupNorm(min(32, channels // 4), channels)


class Backbone(nn.Module):
    """The interface every registered backbone has: ``conv4`` and ``conv5``, both at total stride 16.

    ``conv4`` maps normalised frames ``[n, 3, H, W]`` to ``[n, conv4_channels, ceil(H/16), ceil(W/16)]`` (the maps
    the RPN and the frame-level fusion read); ``conv5`` maps those to ``[n, conv5_channels, h, w]`` (same size, the
    RoI head's input).

    Attributes:
        conv4_channels: d, channels of the conv4 maps fused by the frame-level fusion.
        conv5_channels: channels of the conv5 maps fed to the RoI head.
        stride: 16.
        early_stages: the modules :meth:`freeze_early_stages` freezes (for a ResNet: the stem and layer1).
    """

    def __init__(self, conv4: nn.Module, conv5: nn.Module, *, conv4_channels: int, conv5_channels: int,
                 early_stages: tuple[nn.Module, ...] = ()):
        super().__init__()
        self.conv4 = conv4
        self.conv5 = conv5
        self.conv4_channels = conv4_channels
        self.conv5_channels = conv5_channels
        self.stride = STRIDE
        self.early_stages = tuple(early_stages)  # a tuple: nn.Module does not register these a second time

    @classmethod
    def from_stages(cls, stem: nn.Module, stages: list[nn.Module], *, conv4_channels: int,
                    conv5_channels: int) -> "Backbone":
        """A ResNet-like network: ``conv4`` = stem + the first three stages, ``conv5`` = the fourth; the stem and
        the first stage (ResNet's conv2) are the early stages."""
        conv4 = nn.Sequential(stem, *stages[:3])
        return cls(conv4, stages[3], conv4_channels=conv4_channels, conv5_channels=conv5_channels,
                   early_stages=(conv4[0], conv4[1]))

    def freeze_early_stages(self) -> None:
        """Stop gradients to the early stages, as in the peers' ImageNet-initialised recipes
        (``model.backbone.freeze_stem_and_conv2``)."""
        for stage in self.early_stages:
            for parameter in stage.parameters():
                parameter.requires_grad_(False)


def _stem(width: int, norm: Callable[[int], nn.Module]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False), norm(width), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def _torchvision_resnet(name: str, norm: Callable[[int], nn.Module]) -> resnet.ResNet:
    """torchvision's ResNet with conv5 at stride 16 and every conv5 convolution wider than 1x1 dilated by 2.

    ``replace_stride_with_dilation`` keeps the first conv5 block's 3x3 conv at dilation 1 (it gets the previous
    stage's dilation); the paper, like FGFA, SELSA, MEGA and mmtracking's DC5 ResNets, dilates all of them.
    Dilation and padding change no parameter, so ImageNet state dicts load unchanged.
    """
    depths, groups, width_per_group = _ARCHITECTURES[name]
    net = resnet.ResNet(
        resnet.Bottleneck, depths, groups=groups, width_per_group=width_per_group,
        replace_stride_with_dilation=[False, False, True], norm_layer=norm,
    )
    for module in net.layer4.modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size[0] > 1:
            module.dilation, module.padding = (2, 2), (2, 2)
    return net


def _tiny_stage(inplanes: int, planes: int, stride: int, dilation: int, norm) -> nn.Sequential:
    """One torchvision Bottleneck block (with its projection shortcut)."""
    out = planes * resnet.Bottleneck.expansion
    downsample = nn.Sequential(resnet.conv1x1(inplanes, out, stride), norm(out))
    return nn.Sequential(resnet.Bottleneck(inplanes, planes, stride, downsample, dilation=dilation, norm_layer=norm))


def _tiny_backbone(width: int, norm: Callable[[int], nn.Module]) -> Backbone:
    """A 4-block Bottleneck ResNet with ``width`` base channels, for tests and synthetic data."""
    expansion = resnet.Bottleneck.expansion
    layers = [
        _tiny_stage(width, width, 1, 1, norm),
        _tiny_stage(width * expansion, width * 2, 2, 1, norm),
        _tiny_stage(width * 2 * expansion, width * 4, 2, 1, norm),
        _tiny_stage(width * 4 * expansion, width * 8, 1, 2, norm),
    ]
    return Backbone.from_stages(_stem(width, norm), layers, conv4_channels=width * 4 * expansion,
                                conv5_channels=width * 8 * expansion)


@BACKBONES.register("resnet_tiny")
def _build_tiny(config: BackboneConfig) -> Backbone:
    if config.weights is not None:
        raise ConfigError("resnet_tiny has no ImageNet weights; leave backbone.weights empty")
    return _tiny_backbone(config.tiny_width, _norm_layer(config.norm))


BACKBONES.register(timm_backbone.PREFIX, timm_backbone.build_timm_backbone)


def _build_resnet(config: BackboneConfig) -> Backbone:
    """ResNet-50 / ResNet-101 / ResNeXt-101 with dilated conv5 and, if asked, ImageNet weights."""
    net = _torchvision_resnet(config.name, _norm_layer(config.norm))
    if config.weights == "torchvision":
        _download_torchvision_weights(net, config.name)
    elif config.weights is not None:
        load_imagenet_weights(net, config.weights, config.name)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return Backbone.from_stages(stem, [net.layer1, net.layer2, net.layer3, net.layer4], conv4_channels=1024,
                                conv5_channels=2048)


for _name in _ARCHITECTURES:
    BACKBONES.register(_name, _build_resnet)


def load_imagenet_weights(model: nn.Module, path: str | Path, name: str) -> None:
    """Load an ImageNet state dict from ``path`` into ``model`` (a torchvision ResNet's classifier ``fc`` is
    ignored), checking every key and shape.

    Raises:
        InputNotFound: the file does not exist.
        InputError: the file is not a state dict, or its keys / shapes do not match the architecture ``name``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"backbone weights file not found: {path}")
    state = load_torch_file(path, "backbone weights file")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"backbone weights file {path} does not hold a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")
                and not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"backbone weights file {path} does not match architecture '{name}': "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise InputError(
                f"backbone weights file {path} does not match architecture '{name}': key '{key}' has shape "
                f"{tuple(value.shape)}, expected {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state, strict=False)


def _download_torchvision_weights(model: resnet.ResNet, name: str) -> None:
    """Opt-in download through torchvision's own downloader; fails fast and clearly when offline."""
    enum_name = _TORCHVISION_WEIGHTS[name]
    if enum_name is None:
        raise ConfigError(
            f"torchvision ships no ImageNet weights for '{name}': convert a checkpoint to torchvision key names "
            "and set backbone.weights to its path (see docs/training.md)"
        )
    weights = getattr(torchvision.models, enum_name).IMAGENET1K_V1
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        state = weights.get_state_dict(progress=True)
    except Exception as error:
        raise Unavailable(
            f"could not download torchvision weights for '{name}' ({error}); download them on a machine with "
            "internet access and set backbone.weights to the local file"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)


def check_trainable_from(config: BackboneConfig) -> None:
    """Refuse to train a backbone whose frozen parts would stay random.

    FrozenBatchNorm without ImageNet statistics is the identity, and a frozen stem without ImageNet weights
    never learns: such a ResNet-101 starts at a loss in the thousands and diverges at the next step.

    Raises:
        ConfigError: naming the keys to set.
    """
    if config.weights is not None:
        return
    frozen = [key for key, on in (("norm: frozen_bn", config.norm == "frozen_bn"),
                                  ("freeze_stem_and_conv2: true", config.freeze_stem_and_conv2)) if on]
    if frozen:
        raise ConfigError(
            f"model.backbone ({config.name}, {', '.join(frozen)}) needs ImageNet weights: set "
            "model.backbone.weights=FILE (or =torchvision), or to train from scratch set "
            "model.backbone.norm=group_norm (or batch_norm) and model.backbone.freeze_stem_and_conv2=false")


def build_backbone(config: BackboneConfig) -> Backbone:
    """Build the backbone registered as ``config.name``, with ImageNet weights if asked; freeze early stages."""
    builder = BACKBONES.get(config.name, key="model.backbone.name")
    if config.weights is not None and config.norm == "group_norm":
        raise ConfigError("ImageNet weights carry BatchNorm statistics: use backbone.norm frozen_bn or batch_norm")
    backbone = builder(config)
    if config.freeze_stem_and_conv2:
        backbone.freeze_early_stages()
    return backbone
