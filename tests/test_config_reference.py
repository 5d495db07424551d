"""The configuration reference (docs/configuration.md) documents every config key and is current."""

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

from dsfnet import config as config_module
from dsfnet.config_reference import iter_keys, render

ROOT = Path(__file__).resolve().parents[1]


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _leaf_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def test_every_key_has_a_meaning_and_a_row():
    documented = {doc.key: doc for doc in iter_keys()}
    assert sorted(documented) == sorted(_leaf_keys(config_module.Config))
    assert all(len(doc.meaning) > 3 for doc in documented.values())
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for key in documented:
        assert f"| `{key}` |" in page, key


def test_committed_page_is_current():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == render(), "docs/configuration.md is stale: run python -m dsfnet.config_reference"


def test_checked_ranges_name_existing_keys_and_reach_the_page():
    documented = {doc.key: doc for doc in iter_keys()}
    for dotted, _, meaning in config_module.RANGES:
        assert documented[dotted].allowed == meaning


def test_a_field_without_a_comment_is_an_error():
    @dataclass
    class Undocumented:
        documented: int = 1  # a key with its meaning
        bare: int = 2

    with pytest.raises(ValueError, match="'bare' has no documentation"):
        list(iter_keys(Undocumented))


def test_comment_above_a_field_documents_it():
    @dataclass
    class Above:
        # the meaning, on the line above
        key: str = "x"

    (doc,) = iter_keys(Above)
    assert (doc.key, doc.default, doc.meaning) == ("key", "x", "the meaning, on the line above")
