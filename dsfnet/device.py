"""Where a command runs: one resolution of ``--device`` for training, evaluation and detection."""

from __future__ import annotations

import torch

from dsfnet.errors import InputError


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The torch device that ``name`` asks for.

    ``auto`` is CUDA when it is available, else the CPU; a CUDA device without an index is ``cuda:<local_rank>``
    (one GPU per process under torchrun). Raises ``ValueError`` for a name torch does not know and for a CUDA
    device on a machine without CUDA.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise InputError(f"invalid --device {name!r} ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device
