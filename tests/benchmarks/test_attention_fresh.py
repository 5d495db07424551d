"""benchmarks/attention.py --fresh: a variant's fusions measured as fine-tuning starts them on a baseline's
weights, e.g. the frame attention with random against identity ϕ / φ."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.demo import BUNDLED

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "attention.py"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    return generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "vid", 0, seed=2020, num_val_videos=2,
                                  num_frames=6, num_det_images=0)


def attention(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), BUNDLED["tiny"]["baseline"], "--data", *map(str, args),
                           "--frames-per-video", "1", "--threads", "1"], capture_output=True, text=True, timeout=600)


def test_fresh_frame_fusion_on_a_baseline_with_random_and_identity_projections(held_out, tmp_path):
    shares = {}
    for name, identity in (("random", "false"), ("identity", "true")):
        out = tmp_path / f"{name}.json"
        opts = ["model.frame_fusion.normalize_tokens=true", f"model.frame_fusion.identity_projections={identity}"]
        run = attention(held_out, "--fresh", "frame", "--out", out, "--opts", *opts)
        assert run.returncode == 0, run.stderr
        (report,) = json.loads(out.read_text()).values()
        assert report["variant"] == "frame" and report["frame"]["relative_change"] == 0.0  # θ is still zero
        shares[name] = report["frame"]["same_channel"] / report["frame"]["random_same_channel"]
    assert shares["random"] < 3 < 20 < shares["identity"]


def test_opts_without_fresh_and_a_bad_key_are_one_line_errors(held_out):
    alone = attention(held_out, "--opts", "model.frame_fusion.identity_projections=true")
    assert alone.returncode == 2 and "--opts applies to --fresh models only" in alone.stderr
    misspelt = attention(held_out, "--fresh", "frame", "--opts", "model.frame_fusion.identity=true")
    assert misspelt.returncode == 2 and "identity" in misspelt.stderr.splitlines()[-1]
    assert "Traceback" not in misspelt.stderr
