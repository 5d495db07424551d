"""Issue 26, case 9: bad inference options are refused at parse time, naming the option, before anything is
written (``--seed -5`` used to fail mid-run in ``eval``, leaving an unfinished ``run.json``)."""

from __future__ import annotations

import pytest

from inferencehelpers import TINY


@pytest.mark.parametrize("command", ["detect", "eval"])
@pytest.mark.parametrize("option, value", [("--seed", "-5"), ("--n", "0"), ("--stride", "0"), ("--seed", "x")])
def test_bad_inference_option_is_refused_before_anything_is_written(cli, checkpoint, tmp_path, capsys, command,
                                                                     option, value):
    out = tmp_path / "out"
    head = ["detect", str(tmp_path / "clip.mp4")] if command == "detect" else ["eval", str(TINY)]
    with pytest.raises(SystemExit) as stop:
        cli([*head, "--weights", str(checkpoint), "--out", str(out), "--sampling", "causal", "--memory", "recent",
             option, value])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {option}: " in last and value in last, last
    assert not out.exists()


def test_a_config_with_a_negative_seed_is_refused(tmp_path):
    from dsfnet.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"test\.seed must be >= 0, got -1"):
        load_config(TINY, ["test.seed=-1"])
