"""benchmarks/attention.py --fresh: a variant's fusions measured as fine-tuning starts them on a baseline's
weights, e.g. the frame attention with random against identity ϕ / φ."""

from __future__ import annotations

import json
import subprocess

from dsfnet.demo import BUNDLED

from tests.benchmarks.scripthelpers import run_script


def attention(*args) -> subprocess.CompletedProcess:
    """attention.py on the bundled tiny baseline, one test frame per video, ``--data`` first of ``args``."""
    return run_script("attention.py", BUNDLED["tiny"]["baseline"], "--data", *args, "--frames-per-video", "1",
                      "--threads", "1")


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
