"""Reading the torch files a user names (checkpoints, backbone weights) with one-line errors.

``torch.load(weights_only=True)`` fails on a corrupt, truncated or foreign file with whatever the unpickler
or the zip reader hit first (``IndexError: list index out of range``, ``KeyError: '101'``, a six-line
``UnpicklingError`` advising ``weights_only=False``): for a damaged file that advice is wrong, and for a file
holding pickled Python objects it would run code from the file. :func:`load_torch_file` says instead which file
is not readable, in one line.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from dsfnet.errors import InputError

#: how the weights-only unpickler names a class it refuses: "Unsupported global: GLOBAL argparse.Namespace was not"
_FOREIGN_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def load_torch_file(path: str | os.PathLike, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; the caller checks that ``path`` is a file.

    Raises:
        InputError: one line ``"{what} PATH is not a readable torch file (...)"``: the file is corrupt,
            truncated or of another format, or it holds pickled Python objects other than tensors and plain
            containers (named; never unpickled, as that could run code from the file).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises IndexError, KeyError, RuntimeError, UnpicklingError, EOFError ...
        foreign = _FOREIGN_GLOBAL.search(str(error))
        reason = (f"it holds the Python object {foreign.group(1)}, not only tensors" if foreign
                  else "corrupt, truncated or another format")
        raise InputError(f"{what} {path} is not a readable torch file ({reason})") from None
