"""The extension recipes of ``docs/EXTENDING.md``: each toy module registers one implementation from outside the
package, as a user's own code would; the ``registered`` fixture imports it and removes it again afterwards."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.fixture
def registered():
    """``registered(registry, name, module)``: import the toy ``module`` (which registers ``name``)."""
    added = []

    def register(registry, name: str, module: str):
        sys.modules.pop(module, None)  # a fresh import registers again
        importlib.import_module(module)
        added.append((registry, name, module))
        return registry.get(name)

    yield register
    for registry, name, module in added:
        registry.unregister(name)
        sys.modules.pop(module, None)
