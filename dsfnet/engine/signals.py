"""A clean stop on SIGTERM, what cluster schedulers send some time before they kill a job (e.g. at its time limit).

Training (:func:`stop_on_sigterm`): the signal only sets a flag. The training loop asks :func:`stop_requested`
once per iteration: the current iteration finishes, ``last.pth`` is written and :class:`TrainingStopped` ends the
run ("stopped by SIGTERM at iteration N; continue with --resume", exit status 128 + 15).

Commands that Ctrl-C stops at once (:func:`sigterm_as_ctrl_c`, ``dsfnet detect``): SIGTERM raises
:class:`Terminated`, a ``KeyboardInterrupt``, so that it takes the path of Ctrl-C: the same clean-up (partial
outputs removed, a live stream's outputs closed), then "stopped by SIGTERM" and exit status 128 + 15.

Ctrl-C (SIGINT) keeps Python's behaviour: ``KeyboardInterrupt`` right away; the checkpoint on disk is the last
complete one, since checkpoint writes are atomic.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator, Optional

_requested: Optional[int] = None  # the signal received while stop_on_sigterm is active


class TrainingStopped(Exception):
    """The run stopped early on a signal, after writing ``last.pth``; ``--resume`` continues it."""

    def __init__(self, signum: int, iteration: int):
        self.signum, self.iteration = signum, iteration
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name} at iteration {iteration}; continue with --resume")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (every ``except KeyboardInterrupt`` cleans up after it too)."""

    signum = signal.SIGTERM
    exit_code = 128 + signal.SIGTERM

    def __str__(self) -> str:
        return "stopped by SIGTERM"


@contextlib.contextmanager
def handling(signums: tuple[int, ...], handler: Callable) -> Iterator[bool]:
    """``handler`` for the signals ``signums`` for the duration, the previous handlers afterwards. Yields whether
    it was installed: not outside the main thread, where Python cannot install signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield True
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _remember(signum: int, frame) -> None:
    global _requested
    _requested = signum


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into a stop request for the duration (a no-op outside the main thread)."""
    global _requested
    _requested = None
    try:
        with handling((signal.SIGTERM,), _remember):
            yield
    finally:
        _requested = None


def _terminate(signum: int, frame) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` for the duration (a no-op outside the main thread)."""
    with handling((signal.SIGTERM,), _terminate):
        yield


def stop_requested(context) -> Optional[int]:
    """The signal that asked this run to stop, or ``None``; under DDP every rank gets the same answer (a tiny
    all-reduce), so all ranks stop after the same iteration and write one consistent checkpoint."""
    if not context.enabled:
        return _requested
    import torch  # here, not at the top: the command line imports this module for TrainingStopped, without torch

    flag = torch.tensor([_requested or 0], dtype=torch.int64, device=context.device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return int(flag.item()) or None
