"""Plain data for JSON and YAML files: one conversion for reports, configs and checkpoints' settings, and one
flattening of nested settings into dotted keys (run manifests, resume records) and one comparison of two such
settings (what a resumed run changed)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, numpy scalars as Python numbers and non-finite floats as ``None``
    (recursively through dicts, lists and tuples), so that ``json`` / ``yaml.safe_dump`` write it and read it
    back equal."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"test": {"seed": 0}}`` -> ``{"test.seed": 0}`` (lists and scalars are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def changed_settings(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list]:
    """``{"train.lr": [old, new], ...}``: the dotted keys whose values differ between two nested settings
    (compared as :func:`jsonable` data; a key on one side only counts, with ``None`` on the other), sorted."""
    old, new = flatten(jsonable(dict(before))), flatten(jsonable(dict(after)))
    return {key: [old.get(key), new.get(key)] for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}
