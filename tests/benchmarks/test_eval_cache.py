"""benchmarks/ablation.py's evaluation cache: answered from the file only for the data it was computed on."""

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

from ablation import eval_cache, evaluate_run  # noqa: E402


def test_a_cache_answers_its_own_data_and_stops_on_other_data(held_out, tmp_path):
    weights = tmp_path / "baseline_seed0" / "final.pth"
    weights.parent.mkdir()
    shutil.copy(BUNDLED["tiny"]["baseline"], weights)
    own = read_vid_split(held_out, "VID_val_videos")
    first = evaluate_run(weights, own, "default")
    cache = eval_cache(weights, "default")
    written = cache.stat().st_mtime_ns
    assert evaluate_run(weights, own, "default") == first and cache.stat().st_mtime_ns == written

    other_root = generate_synthetic_vid(tmp_path / "other", 0, seed=7, num_val_videos=1, num_frames=4,
                                        num_det_images=0)
    with pytest.raises(SystemExit, match=rf"{cache} is an evaluation of other data \(12 frames from .*\)"):
        evaluate_run(weights, read_vid_split(other_root, "VID_val_videos"), "default")

    # a cache written before the data were recorded is read as it is
    cache.write_text(json.dumps({**first, "all": 0.5}))
    assert evaluate_run(weights, read_vid_split(other_root, "VID_val_videos"), "default")["all"] == 0.5
