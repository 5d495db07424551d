"""benchmarks/temporal_average.py as a user runs it: baselines evaluated again with their key frame's conv4 map
moved towards the clip's average, in worker processes, cached, and the gains read from the evaluations."""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest

from tests.benchmarks.scripthelpers import BENCHMARKS, run_script

sys.path.insert(0, str(BENCHMARKS))

from temporal_average import CROSS, main  # noqa: E402

from dsfnet.demo import BUNDLED  # noqa: E402


def test_each_weight_evaluated_in_two_workers_then_read_from_the_caches(held_out, tmp_path, capsys):
    runs = [tmp_path / f"baseline_seed{seed}" / "final.pth" for seed in (0, 1)]
    for weights in runs:
        weights.parent.mkdir()
        shutil.copy(BUNDLED["tiny"]["baseline"], weights)
    out = tmp_path / "average.json"
    first = run_script("temporal_average.py", *runs, "--data", held_out, "--weights", "1", "0.5", "--jobs", "2",
                       "--threads", "1", "--out", out)
    assert first.returncode == 0, first.stderr
    assert len(re.findall(r"^\d\d:\d\d:\d\d evaluated ", first.stdout, re.M)) == 2  # a worker per checkpoint
    report = json.loads(out.read_text())
    run = report["runs"][str(runs[0].parent)]
    for weight in ("1", "0.5"):
        cached = json.loads((runs[0].parent / f"eval_default_average{weight}.json").read_text())
        assert cached.pop("data")["frames"] == 12
        assert {column: run["averaged"][weight][column] for column in cached} == cached
        assert set(run["averaged"][weight]) == set(cached) | set(CROSS)
        gains = report["summary"][weight]["gains"]["all"]
        assert gains[0] == pytest.approx(100 * (cached["all"] - run["as trained"]["all"]))
    # the plain average of a video's frames is not the key frame's map: the detections differ
    assert json.loads((runs[0].parent / "eval_default_average1.json").read_text()) != \
        json.loads((runs[0].parent / "eval_default.json").read_text())
    main([*map(str, runs), "--data", str(held_out), "--weights", "1", "--jobs", "2", "--threads", "1"])
    again = capsys.readouterr().out
    assert not re.search(r"^\d\d:\d\d:\d\d evaluated ", again, re.M)  # read from the caches
    assert again.startswith("| weight | all |")


def test_similarity_weighted_mixture_is_cached_under_its_own_tag(held_out, tmp_path, capsys):
    weights = tmp_path / "baseline_seed0" / "final.pth"
    weights.parent.mkdir()
    shutil.copy(BUNDLED["tiny"]["baseline"], weights)
    for similarity in ([], ["--similarity"]):
        main([str(weights), "--data", str(held_out), "--weights", "1", "--threads", "1", *similarity])
    capsys.readouterr()
    averaged, weighed = (json.loads((weights.parent / f"eval_default_{tag}1.json").read_text())
                         for tag in ("average", "similarity"))
    assert averaged["data"] == weighed["data"] and averaged != weighed  # same frames, frames weighed differently


def test_a_checkpoint_with_a_frame_fusion_is_a_one_line_error(held_out, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([str(BUNDLED["tiny"]["dsfnet"]), "--data", str(held_out)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("has a frame-level fusion of its own; "
                                                                    "give baselines (or instance variants)")
