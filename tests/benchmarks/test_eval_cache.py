"""benchmarks/ablation.py's caches beside a checkpoint (evaluations, attention reports): answered from the file only
for the data they were computed on."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.data.vid import read_vid_split
from dsfnet.demo import BUNDLED

from tests.benchmarks.scripthelpers import BENCHMARKS

sys.path.insert(0, str(BENCHMARKS))

from ablation import attention_cache, attention_run, eval_cache, evaluate_run  # noqa: E402


def run_copy(tmp_path, variant: str):
    """A copy of the bundled tiny ``variant`` in a run folder of its own."""
    weights = tmp_path / f"{variant}_seed0" / "final.pth"
    weights.parent.mkdir()
    shutil.copy(BUNDLED["tiny"][variant], weights)
    return weights


def other_data(tmp_path):
    """One synthetic video of four frames, other than the held-out set."""
    return read_vid_split(generate_synthetic_vid(tmp_path / "other", 0, seed=7, num_val_videos=1, num_frames=4,
                                                 num_det_images=0), "VID_val_videos")


def test_a_cache_answers_its_own_data_and_stops_on_other_data(held_out, tmp_path):
    weights = run_copy(tmp_path, "baseline")
    own = read_vid_split(held_out, "VID_val_videos")
    first = evaluate_run(weights, own, "default")
    cache = eval_cache(weights, "default")
    written = cache.stat().st_mtime_ns
    assert evaluate_run(weights, own, "default") == first and cache.stat().st_mtime_ns == written

    other = other_data(tmp_path)
    with pytest.raises(SystemExit, match=rf"{cache} was computed on other data \(12 frames from .*\)"):
        evaluate_run(weights, other, "default")

    # a cache written before the data were recorded is read as it is
    cache.write_text(json.dumps({**first, "all": 0.5}))
    assert evaluate_run(weights, other, "default")["all"] == 0.5


def test_an_attention_report_cache_stops_on_other_data(held_out, tmp_path):
    weights = run_copy(tmp_path, "dsfnet")
    own = read_vid_split(held_out, "VID_val_videos")
    report = attention_run(weights, own, 3)
    assert report["frame"] and attention_run(weights, own, 3) == report
    with pytest.raises(SystemExit, match=rf"{attention_cache(weights, 3)} was computed on other data"):
        attention_run(weights, other_data(tmp_path), 3)
