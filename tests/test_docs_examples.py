"""The examples of the README and the user guide run as written.

Every fenced block is labelled with its language. ``python`` blocks run in order in one namespace per page and
``bash`` blocks in a shell (``dsfnet`` is this checkout's), in a fresh folder holding ``configs/`` and, except
for the pages that make their own, a small synthetic dataset at ``data/synth_vid``. A block that cannot run here
(it needs ImageNet VID, a GPU, a camera, or hours) is preceded by ``<!-- not run by the tests: REASON -->``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the pages whose examples are checked; the first two make their own dataset
PAGES = ("README.md", "docs/getting-started.md", "docs/data.md", "docs/training.md", "docs/inference.md",
         "docs/evaluation.md", "docs/results.md", "docs/design.md", "docs/failure.md")
MAKES_OWN_DATA = ("README.md", "docs/getting-started.md")
RUN = ("python", "bash")
NOT_RUN = re.compile(r"<!-- not run by the tests: (.+?) -->")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    skip_reason: str | None


def blocks(page: str) -> list[Block]:
    """The fenced code blocks of ``page`` (indented ones, inside list items, included)."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = opening.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.search(previous)
        code = "\n".join(line[len(indent):] for line in lines[i + 1:end])
        found.append(Block(page, i + 1, language, code, marker.group(1) if marker else None))
        i = end + 1
    return found


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory) -> Path:
    from dsfnet.data.synth import generate_synthetic_vid

    return generate_synthetic_vid(tmp_path_factory.mktemp("data") / "synth_vid", 2, 0, num_val_videos=2,
                                  num_frames=10, num_det_images=2)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    shim = tmp_path / ".bin"
    shim.mkdir()
    (shim / "dsfnet").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dsfnet "$@"\n')
    (shim / "dsfnet").chmod(0o755)
    (shim / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_block_is_labelled_and_every_skip_gives_a_reason():
    for page in PAGES:
        for block in blocks(page):
            assert block.language, f"{page}:{block.line}: label the code block (python, bash, text, yaml, json)"
            assert block.skip_reason is None or len(block.skip_reason) > 10, f"{page}:{block.line}"


@pytest.mark.parametrize("page", PAGES)
def test_examples_run_as_written(page, workdir, synth_data):
    if page not in MAKES_OWN_DATA:
        shutil.copytree(synth_data, workdir / "data" / "synth_vid")
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in blocks(page):
        if block.language not in RUN or block.skip_reason:
            continue
        where = f"{page}:{block.line}"
        if block.language == "python":
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the documented example
        else:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, f"{where} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        ran += 1
    runnable = [b for b in blocks(page) if b.language in RUN]
    assert ran == len(runnable) - sum(bool(b.skip_reason) for b in runnable)
