"""The plain-data helpers shared by run manifests, configs and resume records."""

from __future__ import annotations

import numpy as np

from dsfnet.jsonable import changed_settings, flatten, jsonable


def test_jsonable_turns_tuples_numpy_scalars_and_non_finite_floats_into_plain_data():
    assert jsonable({"a": (1, np.float32(0.5)), "b": [np.int64(3), float("nan")]}) == {"a": [1, 0.5], "b": [3, None]}


def test_flatten_gives_dotted_keys_and_keeps_lists_as_leaves():
    assert flatten({"train": {"lr": 0.01, "lr_steps": [3, 4]}, "seed": 0}) == \
        {"train.lr": 0.01, "train.lr_steps": [3, 4], "seed": 0}


def test_changed_settings_lists_each_differing_key_once_with_old_and_new_values():
    before = {"train": {"lr": 0.01, "lr_steps": (3, 4), "seed": 0}, "test": {"n": 5}}
    after = {"train": {"lr": 0.005, "lr_steps": [3, 4], "seed": 0, "amp": True}, "test": {"n": 5}}
    assert changed_settings(before, after) == {"train.amp": [None, True], "train.lr": [0.01, 0.005]}
    assert changed_settings(after, after) == {}
