"""Benchmark jobs run side by side, each in its own process pinned to its own cores (used by online.py, ablation.py).

Two processes on the same cores would slow each other by an amount that varies with what the other one does;
on disjoint cores each job's time stays that of a machine with ``threads`` cores of its own.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import queue
from typing import Callable, Iterable, Optional, TypeVar

Job = TypeVar("Job")


def core_sets(jobs: int, threads: int) -> list[Optional[set[int]]]:
    """``jobs`` disjoint sets of ``threads`` cores of this process's affinity (``[None]``: one job, not pinned).

    Raises:
        ValueError: when ``jobs * threads`` is more than the cores this process may use.
    """
    available = sorted(os.sched_getaffinity(0))
    if jobs * threads > len(available):
        raise ValueError(f"--jobs {jobs} x --threads {threads} needs more than the {len(available)} cores here")
    if jobs <= 1:
        return [None]
    return [set(available[job * threads : (job + 1) * threads]) for job in range(jobs)]


def check_cores(parser: argparse.ArgumentParser, jobs: int, threads: int) -> None:
    """Stop with ``parser``'s usage error when ``--jobs`` x ``--threads`` is more than the cores here."""
    try:
        core_sets(jobs, threads)
    except ValueError as error:
        parser.error(str(error))


def pin_to(cores: Optional[set[int]]) -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` for ``subprocess`` that pins the child to ``cores`` (None: inherit this affinity)."""
    return (lambda: os.sched_setaffinity(0, cores)) if cores else None


def run_pinned(jobs: Iterable[Job], parallel: int, threads: int,
               work: Callable[[Job, Optional[set[int]]], None]) -> None:
    """Run ``work(job, cores)`` for every job, ``parallel`` at a time, in the given order, each on a core set
    no other running job holds. Every job runs even when one fails; then the first failure is raised."""
    free: queue.Queue = queue.Queue()
    for cores in core_sets(parallel, threads):
        free.put(cores)

    def one(job: Job) -> None:
        cores = free.get()
        try:
            work(job, cores)
        finally:
            free.put(cores)

    with concurrent.futures.ThreadPoolExecutor(max(1, parallel)) as pool:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result()
