"""Run ``dsfnet`` in real processes: one process, or ``torch.distributed.run`` (torchrun) with gloo ranks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(args: list[str], nproc: int) -> list[str]:
    """``python -m dsfnet ARGS`` (nproc 0) or ``python -m torch.distributed.run --nproc_per_node N -m dsfnet ARGS``."""
    if nproc == 0:
        return [sys.executable, "-m", "dsfnet", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "dsfnet", *args]


def environment() -> dict:
    """The test's environment (PYTHONPATH included) with one intra-op thread per process."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run(args: list[str], nproc: int = 0, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command(args, nproc), env=environment(), capture_output=True, text=True, timeout=timeout)


def descendants(pid: int) -> list[int]:
    """Process ids of ``pid``'s children, grandchildren, ... (from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while listing
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_and_kill(args: list[str], nproc: int, ready: Callable[[], bool], timeout: float = 300) -> int:
    """Start the command in its own process group and, as soon as ``ready()`` is true, SIGKILL that group and
    every process below it: torchrun starts each worker in a session of its own, so killing the launcher's
    group alone would leave the ranks running (a machine that dies takes them all). Returns the launcher's exit
    status (negative: killed by that signal)."""
    process = subprocess.Popen(command(args, nproc), env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):  # ended on its own
        os.killpg(process.pid, signal.SIGKILL)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    status = process.wait(timeout=30)
    # a killed rank lets go of its files (the run folder's lock) only once it has exited: wait for that, as the
    # next command of a test would otherwise race with the kernel
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline + 30:
        time.sleep(0.01)
    return status


def _running(pid: int) -> bool:
    """Whether ``pid`` may still hold its files: not ended, or a zombie whose other threads are still exiting (the
    thread-group leader turns zombie first; the process's files close only when its last thread has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" or len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def files(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(path.name for path in folder.glob(pattern)) if folder.is_dir() else []


def validating_train_worker(rank: int, world_size: int, port: int, config, out_dir: str, result_dir: str) -> None:
    """One gloo rank of ``train`` with periodic validation; records the videos this rank's predictor ran on
    (``VideoPredictor.predict`` wrapped, not replaced) into ``result_dir/rank<r>.json``."""
    import json

    import torch

    from dsfnet.engine.trainer import train
    from dsfnet.inference.evaluate import periodic_validation
    from dsfnet.inference.predictor import VideoPredictor

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    seen: list[str] = []
    predict = VideoPredictor.predict

    def recording(self, source):
        seen.append(source.name)
        yield from predict(self, source)

    VideoPredictor.predict = recording
    train(config, out_dir, device="cpu", progress=False, evaluation=periodic_validation(config))
    Path(result_dir, f"rank{rank}.json").write_text(json.dumps(seen))
