"""``dsfnet demo`` end to end with tiny random checkpoints, and the checks on the checkpoints it loads."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch

from dsfnet.cli import main
from dsfnet.config import load_config
from dsfnet.commands.demo import BACKBONES
from dsfnet.demo import BUNDLED, DEFAULT_BACKBONE, run_demo
from dsfnet.engine.checkpoint import load_model, save_checkpoint, training_checkpoint
from dsfnet.models.build import build_model

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"



def _checkpoint(path, variant, **changes):
    config = load_config(TINY_CONFIG, [f"model.variant={variant}", "data.min_size=64", "data.max_size=80"])
    torch.manual_seed(0)
    state = training_checkpoint(build_model(config.model), config, iteration=0)
    state.update(changes)
    return save_checkpoint(path, state)


@pytest.fixture
def checkpoints(tmp_path):
    return {name: _checkpoint(tmp_path / f"{name}.pth", name) for name in ("baseline", "dsfnet")}


def test_demo_writes_reports_detections_and_a_side_by_side_video(tmp_path, checkpoints):
    out = tmp_path / "demo"
    rows = run_demo(out, num_videos=1, num_frames=5, weights=checkpoints)
    assert set(rows) == {"baseline", "dsfnet"}
    report = json.loads((out / "demo_report.json").read_text())
    assert report["models"]["dsfnet"]["ms_per_frame"] > 0 and "map_fast" in report["models"]["baseline"]
    for name in rows:
        lines = (out / name / "detections.jsonl").read_text().splitlines()
        assert len(lines) == 5 and json.loads(lines[0])["frame_index"] == 0
        assert (out / name / "report.json").is_file()
    with av.open(str(out / "side_by_side.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (128, 320, 3)  # two 160x128 panels


def test_demo_rejects_incompatible_checkpoints(tmp_path, checkpoints, capsys):
    swapped = {"baseline": checkpoints["dsfnet"], "dsfnet": checkpoints["baseline"]}
    with pytest.raises(ValueError, match="expected a 'baseline' checkpoint, got one of variant 'dsfnet'"):
        run_demo(tmp_path / "a", num_videos=1, num_frames=2, weights=swapped, write_video=False)
    future = _checkpoint(tmp_path / "future.pth", "dsfnet", format_version=99)
    code = main(["demo", "--out", str(tmp_path / "b"), "--videos", "1", "--frames", "2", "--no-video",
                 "--dsfnet-weights", str(future), "--baseline-weights", str(checkpoints["baseline"])])
    assert code == 2 and "format_version 99" in capsys.readouterr().err
    code = main(["demo", "--out", str(tmp_path / "c"), "--dsfnet-weights", str(tmp_path / "missing.pth")])
    assert code == 2 and "checkpoint not found" in capsys.readouterr().err


def test_bundled_checkpoints_load_with_their_variants_and_backbones():
    assert BACKBONES == (DEFAULT_BACKBONE, *sorted(set(BUNDLED) - {DEFAULT_BACKBONE}))  # the CLI's choices
    for backbone, expected in (("light", "timm:tf_efficientnet_lite0"), ("tiny", "resnet_tiny")):
        for name, path in BUNDLED[backbone].items():
            assert path.stat().st_size <= 20 * 2**20
            model, config = load_model(path)  # the light pair needs no `light` extra: the file holds every weight
            assert config.model.variant == name and not model.training
            assert config.model.backbone.name == expected
