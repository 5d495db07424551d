"""Work split across ranks for evaluation and batch detection (``torchrun … -m dsfnet eval|detect``).

- :func:`balanced_assignment` / :func:`my_share`: which items (videos, inputs) each rank runs, balanced by a size
  (frame count); every rank computes the same assignment from the same sizes, so nothing has to be sent around.
- :func:`run_my_share`: this rank's items one after the other, then a wait for all ranks.
- :func:`decided_by_main`: a decision (a resume check, the list of finished items) taken on rank 0 and handed to
  every rank; an error raised there is raised on every rank, so that no rank waits for one that gave up.

A single process is the ``world_size = 1`` case of the same code: it gets every item and no message is sent.
"""

from __future__ import annotations

import heapq
import time
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch.distributed as dist

from dsfnet.engine.distributed import DistributedContext
from dsfnet.errors import InputError
from dsfnet.inference.rank_progress import RankProgress, peak_memory_per_rank

#: process-group timeout of inference commands: at the end every rank waits for the slowest one, whose last video
#: may take hours (torch's default of 10-30 min would fail the run); a rank that dies ends the job at once anyway
#: (torchrun stops the others)
INFERENCE_TIMEOUT = timedelta(hours=24)


def balanced_assignment(sizes: Sequence[int], world_size: int) -> list[list[int]]:
    """Indices of ``sizes`` per rank, each rank's list in increasing index order.

    Longest-processing-time-first: items in decreasing size (ties: lower index first) go to the rank with the
    smallest total so far (ties: lower rank). The largest rank total is at most 4/3 of the optimum (Graham), and
    the result depends on ``sizes`` and ``world_size`` only.
    """
    if world_size < 1:
        raise InputError(f"world_size must be >= 1, got {world_size}")
    loads = [(0, rank) for rank in range(world_size)]  # (total size, rank): a min-heap
    assigned: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(sizes)), key=lambda i: (-int(sizes[i]), i)):
        load, rank = heapq.heappop(loads)
        assigned[rank].append(index)
        heapq.heappush(loads, (load + int(sizes[index]), rank))
    return [sorted(indices) for indices in assigned]


def my_share(indices: Sequence[int], sizes: Sequence[int], context: DistributedContext) -> list[int]:
    """This rank's part of ``indices`` (``sizes[i]`` is the size of ``indices[i]``), balanced over all ranks."""
    return [indices[i] for i in balanced_assignment(sizes, context.world_size)[context.rank]]


def decided_by_main(decide: Callable[[], Any], context: DistributedContext) -> Any:
    """``decide()`` run on rank 0 only, its result returned on every rank.

    A ``ValueError`` / ``FileNotFoundError`` / ``FileExistsError`` / ``RuntimeError`` raised by ``decide`` is
    re-raised on every rank with the same message (the command then ends everywhere with the same one-line error).
    """
    outcome: list = [None]
    if context.is_main:
        try:
            outcome[0] = ("ok", decide())
        except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
            outcome[0] = ("error", error)
    if context.enabled:
        dist.broadcast_object_list(outcome, src=0)
    status, value = outcome[0]
    if status == "error":
        raise value
    return value



def run_my_share(mine: Sequence[int], work: Callable[[int], None], bar: RankProgress,
                 context: DistributedContext) -> tuple[float, str]:
    """``work(index)`` for each of this rank's items (``bar.item_done()`` after each), then wait for every rank.

    Returns the seconds from the start until the last rank was done and the line of peak memory per rank
    (every rank must call this: the wait is a collective call)."""
    started = time.perf_counter()
    try:
        for index in mine:
            work(index)
            bar.item_done()
    finally:
        bar.close()
    memory = peak_memory_per_rank(context)
    return time.perf_counter() - started, memory
