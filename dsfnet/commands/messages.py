"""How the commands show warnings: one line each on standard error, ``dsfnet COMMAND: warning: ...``."""

from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Iterator


@contextlib.contextmanager
def warnings_as_lines(command: str) -> Iterator[None]:
    """Within the block every warning is shown (also repeats) as one line naming the command, without the
    source line Python's default format adds."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"dsfnet {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield
