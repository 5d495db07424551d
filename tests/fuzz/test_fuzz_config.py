"""Fuzzing the YAML config reader (``dsfnet train CONFIG``, ``dsfnet eval --config``): a config file and the base
it names; what loads must also survive the trip through a run folder's ``config.yaml`` (written by
``dsfnet.engine.run_dir``, read back on ``--resume`` and by checkpoints)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dsfnet.config import Config, ConfigError, config_from_dict, load_config
from dsfnet.jsonable import jsonable

from tests.fuzz.fuzzhelpers import FUZZ, any_input, mutated_document, read_or_input_error

TINY = (Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml").read_text()
CHILD = "base: base.yaml\ntrain:\n  lr: 0.02\n  lr_steps: [10, 15]\ntest:\n  sampling: stride\n  stride: 2\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("configs")


def load(folder: Path, config: bytes, base: bytes = TINY.encode()) -> None:
    """Load ``config`` (``child.yaml``, which may name ``base.yaml``): a valid :class:`Config` that a run folder's
    ``config.yaml`` gives back unchanged, or the one-line error naming one of the two files."""
    (folder / "base.yaml").write_bytes(base)
    (folder / "child.yaml").write_bytes(config)
    loaded = read_or_input_error(lambda: load_config(folder / "child.yaml"), folder / "child.yaml",
                                 folder / "base.yaml")
    if loaded is not None:
        assert isinstance(loaded, Config)
        assert config_from_dict(yaml.safe_load(yaml.safe_dump(jsonable(loaded.to_dict())))) == loaded


def repeated_line(text: str) -> st.SearchStrategy[bytes]:
    """``text`` with one of its lines written a second time, at once or further down (a repeated key)."""
    lines = text.splitlines(keepends=True)
    return st.tuples(st.integers(0, len(lines) - 1), st.integers(0, len(lines))).map(
        lambda pick: "".join(lines[:pick[1]] + [lines[pick[0]]] + lines[pick[1]:]).encode())


def test_valid_configs_load(folder):
    load(folder, TINY.encode())
    load(folder, CHILD.encode())
    assert load_config(folder / "child.yaml").test.stride == 2


@FUZZ
@given(text=st.sampled_from([TINY, CHILD]), data=st.data())
def test_mutated_bytes(folder, text, data):
    load(folder, data.draw(st.one_of(any_input(text.encode()), repeated_line(text))))


@FUZZ
@given(document=st.sampled_from([yaml.safe_load(TINY), yaml.safe_load(CHILD)]).flatmap(mutated_document))
def test_mutated_documents(folder, document):
    load(folder, yaml.safe_dump(document).encode())


@FUZZ
@given(base=st.one_of(mutated_document(yaml.safe_load(TINY)).map(lambda d: yaml.safe_dump(d).encode()),
                      any_input(TINY.encode())))
def test_mutated_base(folder, base):
    load(folder, CHILD.encode(), base)


#: configs the fuzzing found (TypeError, OverflowError; NaN accepted but written as null into a run's config.yaml;
#: a missing base not saying which file names it; a wrong key not naming the file)
FOUND = {
    "base: true": ("base: true\n", "'base' must name a config file, got True"),
    "missing base": ("base: nothere.yaml\n", "'base' must name a config file, got 'nothere.yaml'"),
    "nan threshold": ("model:\n  rpn:\n    nms_thresh: .nan\n", "'model.rpn.nms_thresh' must be float (finite)"),
    "int past 1e308": ("train:\n  lr: 1" + "0" * 400 + "\n", "'train.lr' must be float (finite)"),
    "seed past int64": ("train:\n  seed: 99999999999999999999\n", "'train.seed' must be int (64-bit)"),
    "unknown key": ("test:\n  num_frame: 3\n", "unknown config key 'test.num_frame'"),
}


@pytest.mark.parametrize("text, message", FOUND.values(), ids=FOUND.keys())
def test_found_configs_are_one_line_errors(folder, text, message):
    (folder / "child.yaml").write_text(text)
    with pytest.raises(ConfigError, match=f"^config file {re.escape(str(folder / 'child.yaml'))}: .*"
                                          + re.escape(message)):
        load_config(folder / "child.yaml")
