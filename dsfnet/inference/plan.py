"""Which support frames each test frame of a video uses, and which memory of support features serves it.

A plan is a pure function of the video's frame count and the test settings (``plan_support``); the predictor
asks it three things:

- ``support(t)``: the support frames of test frame ``t`` (exactly ``dsfnet.data.sampling.support_frames``);
- ``memory_of(t)``: the support memory that serves ``t``, as ``(frames, exclude)``: the memory's frames in order
  and the position of one of them that ``t`` reads the memory without (``None``: all of them). Equal ``frames``
  mean one memory; ``exact`` mode uses the same frames, in the same order, for its clips;
- ``pinned`` and ``last_use(j)``: frames whose features are kept for the whole video, and the last test frame
  that reads frame ``j``'s features (when the feature window may drop them).

Plans: :class:`SharedSupport` (``shuffled``: one global set G of n−1 frames; a test frame in G uses G \\ {t} plus
the n-th frame of the shuffled order, so one memory of those n frames serves every test frame, each leaving one
out), :class:`LocalSupport` (``stride``: neighbours within ``reach`` of each test frame, a memory per test frame)
and :class:`NoSupport` (n = 1, or a model without fusion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from dsfnet.data.sampling import shuffled_support_order, support_frames
from dsfnet.errors import InputError

MemoryUse = tuple[tuple[int, ...], Optional[int]]


@dataclass(frozen=True)
class NoSupport:
    """Test frames read no other frame."""

    num_frames: int
    pinned: frozenset[int] = frozenset()

    def support(self, t: int) -> list[int]:
        return []

    def memory_of(self, t: int) -> Optional[MemoryUse]:
        return None

    def last_use(self, j: int) -> int:
        return j


@dataclass(frozen=True)
class SharedSupport:
    """Shuffled sampling: most test frames use one global set; the ≤ n−1 frames of the set have their own.

    Attributes:
        shared: the support list of test frames outside the global set (empty when every frame is inside).
        special: test frame -> its own support list, for the frames of the global set.
        pinned: every frame any test frame uses (≤ n), sorted: the shared memory's frames.
    """

    num_frames: int
    shared: tuple[int, ...]
    special: dict[int, tuple[int, ...]]
    pinned: frozenset[int]

    def support(self, t: int) -> list[int]:
        return list(self.special.get(t, self.shared))

    def memory_of(self, t: int) -> Optional[MemoryUse]:
        support = self.support(t)
        if not support:
            return None
        members = tuple(sorted(self.pinned))
        if len(set(support)) == len(support) == len(members) - 1 and set(support) <= self.pinned:
            missing = next(frame for frame in members if frame not in support)
            return members, members.index(missing)
        return tuple(sorted(support)), None  # a short video: support frames repeat, a memory of their own

    def last_use(self, j: int) -> int:
        return self.num_frames - 1 if j in self.pinned else j


@dataclass(frozen=True)
class LocalSupport:
    """Stride sampling: every support frame of test frame t lies within ``[t - reach, t + reach]``."""

    num_frames: int
    n: int
    stride: int
    reach: int
    pinned: frozenset[int] = frozenset()

    def support(self, t: int) -> list[int]:
        support = support_frames(self.num_frames, t, self.n, "stride", stride=self.stride)
        if any(abs(j - t) > self.reach for j in support):
            raise RuntimeError(f"stride support of frame {t} reaches beyond ±{self.reach} frames: {support}")
        return support

    def memory_of(self, t: int) -> Optional[MemoryUse]:
        return tuple(self.support(t)), None  # already in temporal order

    def last_use(self, j: int) -> int:
        return min(self.num_frames - 1, j + self.reach)


SupportPlan = Union[NoSupport, SharedSupport, LocalSupport]


def plan_support(num_frames: int, n: int, sampling: str, stride: int = 1, seed: int = 0) -> SupportPlan:
    """The plan of a video of ``num_frames`` frames for n-frame clips (test frame + n−1 support frames)."""
    if n <= 1:
        return NoSupport(num_frames)
    if sampling == "stride":
        # offsets -s, +s, -2s, ... : n-1 of them reach (n // 2)·s frames away at most
        return LocalSupport(num_frames, n, stride, (n // 2) * stride)
    if sampling != "shuffled":
        raise InputError(f"sampling must be 'shuffled' or 'stride', got {sampling!r}")
    global_set = shuffled_support_order(num_frames, seed)[: n - 1]  # all frames when the video is shorter than n
    special = {t: tuple(support_frames(num_frames, t, n, "shuffled", seed=seed)) for t in global_set}
    outside = next((t for t in range(num_frames) if t not in special), None)
    shared = () if outside is None else tuple(support_frames(num_frames, outside, n, "shuffled", seed=seed))
    if outside is not None and set(shared) != set(global_set):
        raise RuntimeError(f"support_frames({num_frames}, {outside}, n={n}, 'shuffled', seed={seed}) returned "
                           f"{sorted(shared)}, not the global set {sorted(global_set)}: the predictor relies on "
                           "shuffled sampling sharing one set across test frames")
    pinned = frozenset(shared).union(*special.values())
    return SharedSupport(num_frames, shared, special, pinned)
