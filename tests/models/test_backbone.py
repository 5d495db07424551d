"""Backbones: strides, dilation, freezing, and loading ImageNet state dicts from local files."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torchvision.models import resnet50, resnet18

from dsfnet.config import BackboneConfig
from dsfnet.models import backbone as backbone_module
from dsfnet.models.backbone import build_backbone


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnext101_32x4d"])
def test_every_conv5_convolution_wider_than_1x1_has_dilation_2(name):
    net = build_backbone(BackboneConfig(name=name))
    convs = [module for module in net.conv5.modules() if isinstance(module, torch.nn.Conv2d)]
    wide = [conv for conv in convs if conv.kernel_size != (1, 1)]
    assert len(wide) == 3  # one 3x3 per block, the first block's included
    assert all(conv.dilation == (2, 2) and conv.padding == (2, 2) and conv.stride == (1, 1) for conv in wide)
    assert all(conv.dilation == (1, 1) for conv in convs if conv.kernel_size == (1, 1))
    assert all(conv.dilation == (1, 1) for conv in net.conv4.modules() if isinstance(conv, torch.nn.Conv2d))


def test_resnet50_is_stride_16_with_dilated_conv5():
    net = build_backbone(BackboneConfig(name="resnet50"))
    assert net.conv5[0].conv2.stride == (1, 1) and net.conv5[0].downsample[0].stride == (1, 1)
    with torch.no_grad():
        conv4 = net.conv4(torch.rand(1, 3, 97, 161))
        conv5 = net.conv5(conv4)
    assert conv4.shape == (1, 1024, 7, 11) and conv5.shape == (1, 2048, 7, 11)


def test_resnext101_32x4d_has_grouped_convolutions():
    net = build_backbone(BackboneConfig(name="resnext101_32x4d"))
    block = net.conv4[3][0]  # first block of layer3
    assert block.conv2.groups == 32 and block.conv2.out_channels == 512  # 32 groups x 4 x (1024 / 256)
    assert len(net.conv4[3]) == 23


def test_tiny_backbone_is_stride_16():
    net = build_backbone(BackboneConfig(name="resnet_tiny", tiny_width=8, norm="group_norm"))
    conv4 = net.conv4(torch.rand(2, 3, 128, 160))
    assert conv4.shape == (2, net.conv4_channels, 8, 10) and net.conv5(conv4).shape[1] == net.conv5_channels


def test_stem_and_conv2_frozen_with_frozen_bn():
    net = build_backbone(BackboneConfig(name="resnet50", norm="frozen_bn", freeze_stem_and_conv2=True))
    assert not any(p.requires_grad for p in net.conv4[:2].parameters())
    assert all(p.requires_grad for p in net.conv4[2].parameters())
    assert type(net.conv4[0][1]).__name__ == "FrozenBatchNorm2d"


def test_loads_a_torchvision_state_dict_from_a_file(tmp_path):
    torch.manual_seed(0)
    reference = resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    net = build_backbone(BackboneConfig(name="resnet50", weights=str(path)))
    assert torch.equal(net.conv4[0][0].weight, reference.conv1.weight)
    assert torch.equal(net.conv5[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert torch.equal(net.conv4[3][5].bn2.running_var, reference.layer3[5].bn2.running_var)


def test_bad_weight_files_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_backbone(BackboneConfig(name="resnet50", weights=str(tmp_path / "missing.pth")))
    wrong = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), wrong)
    with pytest.raises(ValueError, match="does not match architecture 'resnet50'"):
        build_backbone(BackboneConfig(name="resnet50", weights=str(wrong)))
    incomplete = tmp_path / "incomplete.pth"
    state = resnet50().state_dict()
    del state["layer2.0.conv1.weight"]
    torch.save(state, incomplete)
    with pytest.raises(ValueError, match="1 missing keys .*layer2.0.conv1.weight"):
        build_backbone(BackboneConfig(name="resnet50", weights=str(incomplete)))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a readable torch file"):
        build_backbone(BackboneConfig(name="resnet50", weights=str(corrupt)))


def test_torchvision_download_fails_clearly_offline(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr("torchvision.models.ResNet50_Weights.get_state_dict", offline)
    with pytest.raises(RuntimeError, match="could not download torchvision weights for 'resnet50'"):
        build_backbone(BackboneConfig(name="resnet50", weights="torchvision"))
    with pytest.raises(ValueError, match="no ImageNet weights for 'resnext101_32x4d'"):
        build_backbone(BackboneConfig(name="resnext101_32x4d", weights="torchvision"))


def test_unknown_backbone_and_group_norm_with_weights_are_rejected():
    with pytest.raises(ValueError, match="unknown backbone 'resnet51'"):
        build_backbone(BackboneConfig(name="resnet51"))
    with pytest.raises(ValueError, match="frozen_bn or batch_norm"):
        build_backbone(BackboneConfig(name="resnet50", norm="group_norm", weights="x.pth"))
    assert "resnet_tiny" in backbone_module.BACKBONES


@pytest.mark.parametrize("overrides, named", [
    ({"norm": "frozen_bn", "freeze_stem_and_conv2": False}, "norm: frozen_bn"),
    ({"norm": "batch_norm", "freeze_stem_and_conv2": True}, "freeze_stem_and_conv2: true"),
])
def test_training_refuses_frozen_parts_without_weights(overrides, named):
    config = BackboneConfig(name="resnet101", **overrides)
    with pytest.raises(ValueError, match=named) as error:
        backbone_module.check_trainable_from(config)
    assert "model.backbone.weights=FILE" in str(error.value) and "group_norm" in str(error.value)
    backbone_module.check_trainable_from(BackboneConfig(name="resnet101", norm="group_norm",
                                                        freeze_stem_and_conv2=False))
