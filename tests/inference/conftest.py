"""Fixtures of the inference tests: a tiny checkpoint and the CLI entry point."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from inferencehelpers import write_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny randomly initialised dsfnet checkpoint (fusion weights randomised)."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture
def cli(monkeypatch):
    """``dsfnet.cli.main``, restricted to the sub-commands that exist in this checkout (others are written in
    parallel; the full list is used as soon as all of them import)."""
    from dsfnet import cli as cli_module

    available = []
    for name in cli_module.COMMANDS:
        try:
            importlib.import_module(f"dsfnet.commands.{name}")
        except ModuleNotFoundError:
            continue
        available.append(name)
    monkeypatch.setattr(cli_module, "COMMANDS", tuple(available))
    return cli_module.main


@pytest.fixture(autouse=True)
def _few_threads():
    """One intra-op thread: these tiny models gain nothing from more, and the test machine is shared."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
