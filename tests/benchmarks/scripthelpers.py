"""Running a benchmark script as a user does, for the tests of the scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    """``python benchmarks/<name> args...`` in a new process; its exit code, stdout and stderr."""
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *map(str, args)], capture_output=True,
                          text=True, timeout=600)
