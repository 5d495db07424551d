"""Which rows belong to which support frame: the one place that knows the frame-major layout of a memory.

A support memory stacks what each of its s frames contributes (frame fusion's channel tokens, instance fusion's
proposals) frame after frame: frame i owns the contiguous rows ``[starts[i], starts[i + 1])``. A test frame that is
itself one of the memory's frames reads the memory *without* that frame (``exclude``), which is what lets one
memory serve every test frame of a video in shuffled sampling (DESIGN §4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from dsfnet.errors import InputError


@dataclass(frozen=True)
class FrameRows:
    """Row ranges of the frames of a frame-major tensor; ``starts`` has one entry per frame and the total last."""

    starts: tuple[int, ...]

    @classmethod
    def of_counts(cls, counts: Sequence[int]) -> "FrameRows":
        """Frames owning ``counts[i]`` rows each, in order."""
        starts = [0]
        for count in counts:
            starts.append(starts[-1] + int(count))
        return cls(tuple(starts))

    @classmethod
    def join(cls, parts: Sequence["FrameRows"]) -> "FrameRows":
        """The frames of several layouts, one after another (the rows of a memory joined from smaller ones)."""
        return cls.of_counts([part.starts[i + 1] - part.starts[i] for part in parts for i in range(part.num_frames)])

    @property
    def num_frames(self) -> int:
        return len(self.starts) - 1

    @property
    def total(self) -> int:
        return self.starts[-1]

    def frame(self, index: int) -> slice:
        """The rows of frame ``index``."""
        if not 0 <= index < self.num_frames:
            raise InputError(f"support frame {index} is not in a memory of {self.num_frames} frames")
        return slice(self.starts[index], self.starts[index + 1])

    def per_frame(self, exclude: Optional[int] = None) -> list[slice]:
        """One row range per frame, in order, without frame ``exclude`` (``None``: all frames)."""
        if exclude is not None:
            self.frame(exclude)  # range check
        return [self.frame(i) for i in range(self.num_frames) if i != exclude]

    def kept(self, exclude: Optional[int] = None) -> list[slice]:
        """The non-empty row ranges around frame ``exclude`` (at most two; all rows when ``None``)."""
        if exclude is None:
            return [slice(0, self.total)] if self.total else []
        left_out = self.frame(exclude)
        ranges = [slice(0, left_out.start), slice(left_out.stop, self.total)]
        return [rows for rows in ranges if rows.stop > rows.start]


def concat_into(parts: Sequence[Tensor], dim: int, buffer: Optional[Tensor] = None) -> Tensor:
    """``torch.cat(parts, dim)``, written into ``buffer``'s storage when it is large enough (``buffer`` is then
    overwritten: the caller must no longer need it).

    A streamed memory joins its frames' contributions once per step; reusing last step's spare storage instead of
    allocating a new tensor each step keeps those large buffers out of the allocator's churn (with glibc, freed
    and reallocated multi-megabyte blocks fragment the heap and the resident size drifts upwards).
    """
    shape = list(parts[0].shape)
    shape[dim] = sum(part.shape[dim] for part in parts)
    out = None
    if buffer is not None and buffer.dtype == parts[0].dtype and buffer.device == parts[0].device:
        storage = buffer.untyped_storage()
        if storage.nbytes() >= math.prod(shape) * buffer.element_size():
            out = buffer.new_empty(0).set_(storage, 0, shape)
    return torch.cat(list(parts), dim=dim, out=out)


def gather_rows(memory: Tensor, rows: FrameRows, exclude: Optional[int], own: Tensor, dim: int = 0) -> Tensor:
    """The memory's rows without frame ``exclude`` along ``dim``, then ``own`` (a test frame's own rows)."""
    index = (slice(None),) * dim
    return torch.cat([memory[index + (kept,)] for kept in rows.kept(exclude)] + [own], dim=dim)
