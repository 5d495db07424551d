"""A clean stop on SIGTERM, what cluster schedulers send some time before they kill a job (e.g. at its time limit).

While :func:`stop_on_sigterm` is active the signal only sets a flag. The training loop asks
:func:`stop_requested` once per iteration: the current iteration finishes, ``last.pth`` is written and
:class:`TrainingStopped` ends the run ("stopped by SIGTERM at iteration N; continue with --resume", exit status
128 + 15). Ctrl-C (SIGINT) keeps Python's behaviour: ``KeyboardInterrupt`` right away; the checkpoint on disk is
the last complete one, since checkpoint writes are atomic.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator, Optional

_requested: Optional[int] = None  # the signal received while stop_on_sigterm is active


class TrainingStopped(Exception):
    """The run stopped early on a signal, after writing ``last.pth``; ``--resume`` continues it."""

    def __init__(self, signum: int, iteration: int):
        self.signum, self.iteration = signum, iteration
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} at iteration {iteration}; continue with --resume")


def _remember(signum: int, frame) -> None:
    global _requested
    _requested = signum


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into a stop request for the duration (a no-op outside the main thread, where Python cannot
    install signal handlers)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested = None
    previous = signal.signal(signal.SIGTERM, _remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _requested = None


def stop_requested(context) -> Optional[int]:
    """The signal that asked this run to stop, or ``None``; under DDP every rank gets the same answer (a tiny
    all-reduce), so all ranks stop after the same iteration and write one consistent checkpoint."""
    if not context.enabled:
        return _requested
    import torch  # here, not at the top: the command line imports this module for TrainingStopped, without torch

    flag = torch.tensor([_requested or 0], dtype=torch.int64, device=context.device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return int(flag.item()) or None

