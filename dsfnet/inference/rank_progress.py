"""Progress of a sharded run: one bar per rank; rank 0's bar shows the work of all ranks.

Work comes in items (videos, inputs) of units (frames, or one unit per input). Rank ``r`` > 0 counts the units
of its own shard. Rank 0 counts the units of every item finished by any rank (``finished()``, read from the
run's output folder at most once a second) plus those of its own item in progress, out of the total of the run,
so one bar tells how far the whole run is. :func:`peak_memory_per_rank` gives the final line its memory figures.
"""

from __future__ import annotations

import resource
import time
from typing import Callable, Optional

import torch
from tqdm import tqdm

from dsfnet.engine.distributed import DistributedContext, all_gather_object


class RankProgress:
    """A tqdm bar for this rank.

    Args:
        context: this rank.
        own_total: units of this rank's shard.
        run_total: units of all ranks' shards (shown by rank 0).
        finished: units of the items all ranks have finished in this run (rank 0 polls it); ``None``: count this
            rank's own units only.
        enabled: ``False`` draws nothing.
    """

    def __init__(self, context: DistributedContext, own_total: int, run_total: int,
                 finished: Optional[Callable[[], int]] = None, enabled: bool = True, desc: str = "inference",
                 unit: str = "frame"):
        self.poll = finished if context.is_main and context.world_size > 1 else None
        total = run_total if self.poll is not None else own_total
        label = desc if context.world_size == 1 else f"{desc} rank {context.rank}" + (" (all)" if self.poll else "")
        self.bar = tqdm(total=total, unit=unit, desc=label, disable=not enabled, dynamic_ncols=True,
                        position=context.rank if context.world_size > 1 else None)
        self.in_item = 0
        self.finished = 0
        self.polled_at = 0.0

    def step(self) -> None:
        """One unit of this rank's current item is done."""
        self.in_item += 1
        self._show()

    def item_done(self) -> None:
        """This rank finished an item (its frames now count among the finished ones)."""
        self.finished += self.in_item
        self.in_item = 0
        self.polled_at = 0.0  # re-read now: the item just written is on disk
        self._show()

    def _show(self) -> None:
        if self.poll is None:
            value = self.finished + self.in_item
        else:
            now = time.monotonic()
            if now - self.polled_at >= 1.0:
                self.finished, self.polled_at = max(self.finished, self.poll()), now
            value = self.finished + self.in_item
        self.bar.update(min(value, self.bar.total) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def peak_memory_mib(device: torch.device) -> float:
    """This process's peak memory in MiB: CUDA memory allocated by torch on a GPU, else the peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_memory_per_rank(context: DistributedContext) -> str:
    """``"peak memory per rank 812, 790 MiB (RSS)"``; a collective call (every rank must make it: it is also
    the run's final barrier)."""
    values = all_gather_object(peak_memory_mib(context.device), context)
    kind = "CUDA" if context.device.type == "cuda" else "RSS"
    return f"peak memory per rank {', '.join(f'{value:.0f}' for value in values)} MiB ({kind})"
