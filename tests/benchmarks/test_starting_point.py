"""benchmarks/starting_point.py: the model a fine-tuning run starts from, saved as a checkpoint to evaluate."""

from __future__ import annotations

import torch

from dsfnet.demo import BUNDLED
from dsfnet.engine.checkpoint import load_checkpoint, load_model

from tests.benchmarks.scripthelpers import run_script

VALUE_START = ["model.frame_fusion.identity_projections=true", "model.frame_fusion.value_init=0.5"]


def test_a_frame_fusion_started_on_a_baseline_keeps_its_weights_and_the_asked_value_projection(tmp_path):
    baseline = BUNDLED["tiny"]["baseline"]
    run = run_script("starting_point.py", baseline, "--variant", "frame", "--out", tmp_path, "--opts", *VALUE_START)
    assert run.returncode == 0, run.stderr
    saved = tmp_path / baseline.parent.name / "final.pth"
    assert run.stdout.split() == [str(saved)]
    model, config = load_model(saved)
    assert config.model.variant == "frame" and load_checkpoint(saved)["iteration"] == 0
    fusion = model.frame_fusion
    eye = torch.eye(fusion.theta.in_channels)
    assert torch.equal(fusion.theta.weight[:, :, 0, 0], 0.5 * eye) and torch.equal(fusion.phi.weight[:, :, 0, 0], eye)
    started, trained = model.state_dict(), load_checkpoint(baseline)["model"]
    assert all(torch.equal(started[name], value.float()) for name, value in trained.items())
    assert set(started) - set(trained) == {f"frame_fusion.{p}.{t}" for p in ("phi", "varphi", "theta")
                                           for t in ("weight", "bias")}

    written = saved.stat().st_mtime_ns
    again = run_script("starting_point.py", baseline, "--variant", "frame", "--out", tmp_path, "--opts",
                       "model.frame_fusion.value_init=1")
    assert again.returncode == 0 and saved.stat().st_mtime_ns == written  # a saved starting point stays


def test_a_bad_override_is_a_one_line_error(tmp_path):
    run = run_script("starting_point.py", BUNDLED["tiny"]["baseline"], "--variant", "frame", "--out", tmp_path,
                     "--opts", "model.frame_fusion.value_start=0.5")
    assert run.returncode == 2 and "value_start" in run.stderr.splitlines()[-1] and "Traceback" not in run.stderr
    assert not any(tmp_path.iterdir())
