"""benchmarks/knockout.py as a user runs it: each fusion of a checkpoint knocked out alone, in worker processes,
cached, and the drops read from the evaluations."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.benchmarks.scripthelpers import BENCHMARKS, run_script

sys.path.insert(0, str(BENCHMARKS))

from knockout import main  # noqa: E402

from dsfnet.demo import BUNDLED  # noqa: E402


def knockout(*args) -> subprocess.CompletedProcess:
    return run_script("knockout.py", *args)


def test_each_fusion_knocked_out_alone_in_two_workers_then_cached(held_out, tmp_path, capsys):
    weights = tmp_path / "dsfnet_seed0" / "final.pth"
    weights.parent.mkdir()
    shutil.copy(BUNDLED["tiny"]["dsfnet"], weights)
    out = tmp_path / "knockout.json"
    first = knockout(weights, "--data", held_out, "--jobs", "2", "--threads", "1", "--out", out)
    assert first.returncode == 0, first.stderr
    assert "evaluated" in first.stdout  # by a worker process
    report = json.loads(out.read_text())
    run = report["runs"]["dsfnet_seed0"]
    assert run["variant"] == "dsfnet" and set(run["without"]) == {"frame", "instance"}
    for fusion in ("frame", "instance"):
        cached = json.loads((weights.parent / f"eval_default_no_{fusion}.json").read_text())
        assert cached.pop("data")["frames"] == 12 and run["without"][fusion] == cached
        drops = report["summary"][f"dsfnet without {fusion}"]["drops"]
        assert drops["all"] == [pytest.approx(100 * (run["with"]["all"] - cached["all"]))]
    # the bundled model's fusions are not identities: knocking both out changes what it finds
    assert run["without"]["frame"] != run["with"] or run["without"]["instance"] != run["with"]
    copy = tmp_path / "other" / "dsfnet_seed0"  # a second run of the same name, its evaluations copied with it
    shutil.copytree(weights.parent, copy)
    main([str(weights), str(copy / "final.pth"), "--data", str(held_out), "--jobs", "2", "--threads", "1",
          "--fusions", "instance", "--out", str(out)])
    again = capsys.readouterr().out
    assert "evaluated" not in again and "| dsfnet without instance | 2 |" in again  # read from the caches
    assert set(json.loads(out.read_text())["runs"]) == {str(weights.parent), str(copy)}  # told apart


def test_a_checkpoint_without_the_fusion_is_a_one_line_error(held_out, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([str(BUNDLED["tiny"]["baseline"]), "--data", str(held_out)])
    assert stopped.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.endswith(f"{BUNDLED['tiny']['baseline']} (baseline) has none of the fusions frame, instance")
