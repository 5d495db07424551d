"""Pooling finetune-ablation results files: gains, tests, and the checks that keep the pool honest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from paired_stats import paired_t_test  # noqa: E402
from pool_ablation import main  # noqa: E402

SETTINGS = {"configs": "synth_light", "protocol": "finetune", "iterations": 1500, "base_iterations": 3000,
            "finetune_lr": 0.0025, "train_videos": 200, "val_videos": 150, "val_frames": 20, "val_seed": 2020}


def results_file(path: Path, seeds: list[int], maps: dict[str, list[float]], **settings) -> Path:
    """A results file whose every column of a run is the given mAP (fraction)."""
    runs = {variant: [dict.fromkeys(("all", "slow", "medium", "fast"), value) for value in values]
            for variant, values in maps.items()}
    path.write_text(json.dumps({"settings": {**SETTINGS, **settings, "seeds": seeds}, "mAP": runs}))
    return path


@pytest.fixture
def two_parts(tmp_path):
    first = results_file(tmp_path / "a.json", [0, 1], {"baseline": [0.40, 0.30], "frame": [0.41, 0.30],
                                                        "instance": [0.43, 0.32], "dsfnet": [0.42, 0.33]})
    second = results_file(tmp_path / "b.json", [2, 3], {"baseline": [0.50, 0.35], "frame": [0.49, 0.36],
                                                         "instance": [0.52, 0.38], "dsfnet": [0.53, 0.34]})
    return first, second


def test_pooled_tests_are_those_of_the_concatenated_gains(two_parts, tmp_path, capsys):
    out = tmp_path / "pooled.json"
    main([str(p) for p in two_parts] + ["--out", str(out)])
    report = json.loads(out.read_text())
    instance = report["per_seed_gains"]["instance > baseline"]
    assert instance == pytest.approx([3.0, 2.0, 2.0, 3.0])
    assert report["per_seed_gains"]["dsfnet > max(frame, instance)"] == pytest.approx([-1.0, 1.0, 1.0, -4.0])
    p_values = {name: paired_t_test(gains)["p"] for name, gains in report["per_seed_gains"].items()}
    # Holm: the smallest p times 4, then the next times 3 (kept monotone), ...
    ordered = sorted(p_values, key=p_values.get)
    assert report["tests"][ordered[0]]["p_holm"] == pytest.approx(min(1, 4 * p_values[ordered[0]]))
    assert report["tests"]["instance > baseline"]["p"] == pytest.approx(paired_t_test([3, 2, 2, 3])["p"])
    assert report["seeds"] == ["0:0", "0:1", "1:2", "1:3"]
    assert "| instance > baseline | +3.0, +2.0, +2.0, +3.0 | +2.5 |" in capsys.readouterr().out


def test_a_repeated_seed_is_refused_unless_allowed(two_parts, tmp_path, capsys):
    rerun = results_file(tmp_path / "rerun.json", [1], {v: [0.3] for v in ("baseline", "frame", "instance", "dsfnet")})
    with pytest.raises(SystemExit, match=r"seed 1 is in .*a\.json and .*rerun\.json"):
        main([str(two_parts[0]), str(rerun)])
    main([str(two_parts[0]), str(rerun), "--allow-repeated-seeds"])
    assert "over 3 runs" in capsys.readouterr().out
    main([str(two_parts[0]), str(rerun), "--seeds-of", "0:0"])  # the re-run of seed 1 replaces the first
    assert "file:seed 0:0, 1:1;" in capsys.readouterr().out


def test_another_protocol_or_a_bad_file_is_refused(two_parts, tmp_path):
    other = results_file(tmp_path / "other.json", [5], {v: [0.3] for v in ("baseline", "frame", "instance", "dsfnet")},
                         val_videos=30)
    with pytest.raises(SystemExit, match=r"other\.json: settings\.val_videos is 30, .*a\.json has 150"):
        main([str(two_parts[0]), str(other)])
    with pytest.raises(SystemExit, match=r"missing\.json: no such results file"):
        main([str(tmp_path / "missing.json")])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"bad\.json: not a results file"):
        main([str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit, match=r"a\.json has no seed 7"):
        main([str(two_parts[0]), "--seeds-of", "0:7"])


def test_the_control_is_pooled_over_the_files_that_ran_it(two_parts, tmp_path, capsys):
    with_control = results_file(tmp_path / "c.json", [4, 5], {"baseline": [0.40, 0.30], "frame": [0.40, 0.30],
                                                                "instance": [0.40, 0.30], "dsfnet": [0.43, 0.33],
                                                                "dsfnet_control": [0.42, 0.30]})
    out = tmp_path / "pooled.json"
    main([str(two_parts[0]), str(with_control), "--out", str(out)])
    control = json.loads(out.read_text())["control"]
    assert control["seeds"] == ["1:4", "1:5"]  # the first file ran no control
    assert control["dsfnet_gains"] == pytest.approx([3.0, 3.0])
    assert control["control_gains"] == pytest.approx([2.0, 0.0])
    assert control["removes"] == pytest.approx(1 - 1 / 3)  # the control keeps +1 of DSFNet's +3
    printed = capsys.readouterr().out
    assert "removes 67 % of DSFNet's gain" in printed and "with another video's support +1.0" in printed
    main([str(p) for p in two_parts])
    assert "control over" not in capsys.readouterr().out
