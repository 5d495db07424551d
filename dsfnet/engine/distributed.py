"""Multi-process training: process group from torchrun's environment, a resumable distributed sampler.

``torchrun --nproc_per_node N -m dsfnet train CONFIG`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; without them training runs in one process.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from dsfnet.device import resolve_device
from dsfnet.errors import InputError, Unavailable


@dataclass
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``device``, the backend (or None)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.backend is not None


def init_distributed(device: str = "auto", timeout: Optional[timedelta] = None) -> DistributedContext:
    """Join the process group described by torchrun's environment variables (NCCL on GPU, gloo on CPU).

    Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) this is a single process and no group is created; a group
    that the caller already created is used, also for one process (so that one GPU can run the NCCL code paths:
    NCCL refuses two ranks on one GPU). ``timeout``: how long a collective call waits for the other ranks
    (``None``: torch's default, 10 min for NCCL, 30 for gloo).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    torch_device = resolve_device(device, local_rank)
    if world_size <= 1 and not dist.is_initialized():
        return DistributedContext(device=torch_device)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise Unavailable(f"WORLD_SIZE={world_size} but {name} is not set: launch with torchrun")
    backend = "nccl" if torch_device.type == "cuda" else "gloo"
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", world_size=world_size, rank=rank,
                                **({} if timeout is None else {"timeout": timeout}))
    return DistributedContext(rank, world_size, torch_device, backend)


def cleanup(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(device: str = "auto", timeout: Optional[timedelta] = None) -> Iterator[DistributedContext]:
    """:func:`init_distributed` for the ``with`` block, the group destroyed when it ends.

    On a normal exit every rank first waits for the others: tearing the group down on a rank that is done while
    another still works (rank 0 writing the report after the last gather) once made gloo abort the finished
    rank ("terminate called without an active exception"). After an exception no rank waits, so none hangs on a
    peer that failed.
    """
    context = init_distributed(device, timeout)
    try:
        yield context
        barrier(context)
    finally:
        cleanup(context)


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        if context.backend == "nccl":
            dist.barrier(device_ids=[context.device.index])
        else:
            dist.barrier()


def all_gather_object(value: Any, context: DistributedContext) -> list:
    """Every rank's ``value`` (a one-element list without a process group)."""
    if not context.enabled:
        return [value]
    gathered: list = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def reduce_mean(values: dict[str, float], context: DistributedContext) -> dict[str, float]:
    """Mean over ranks of a dict of floats (same keys on every rank)."""
    if not context.enabled or not values:
        return dict(values)
    names = sorted(values)
    device = context.device if context.backend == "nccl" else torch.device("cpu")
    tensor = torch.tensor([float(values[name]) for name in names], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= context.world_size
    return dict(zip(names, tensor.tolist()))


class ResumableDistributedSampler(Sampler[int]):
    """torch's ``DistributedSampler`` order (shuffle by ``seed + epoch``, pad, take every world_size-th), plus a
    ``start`` offset so that a resumed run continues mid-epoch with exactly the indices it would have seen.

    Args:
        length: dataset size.
        rank, world_size: this process and the number of processes.
        seed, epoch: the permutation is a function of ``seed + epoch`` only.
        start: number of this rank's indices of the epoch to skip.
        shuffle: permute (True) or keep dataset order.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1, seed: int = 0, epoch: int = 0,
                 start: int = 0, shuffle: bool = True):
        if length <= 0:
            raise InputError("the training dataset is empty")
        self.length, self.rank, self.world_size = length, rank, world_size
        self.seed, self.epoch, self.start, self.shuffle = seed, epoch, start, shuffle
        self.num_samples = math.ceil(length / world_size)

    def indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        total = self.num_samples * self.world_size
        order = (order * math.ceil(total / len(order)))[:total]  # pad by repeating, like DistributedSampler
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)
