"""Support memories for streamed inference: which frames each test frame is fused with, one step at a time.

Pure bookkeeping over frame indices (no tensors): the predictor asks for one :class:`Step` per test frame and
keeps the features of exactly the frames the steps say are in memory.

- ``causal`` (:func:`causal_steps`): frames are tested in the order they arrive and each is fused only with
  frames that came before it, held in a bounded memory (:class:`RecentMemory` or :class:`SpreadMemory`). A frame
  is offered to the memory right after it has been tested, so a step never needs a frame that has not been
  delivered yet, and the plan works on a stream of unknown length.
- ``shuffled_window`` (:func:`shuffled_window_steps`): the other reading of the paper's shuffled sampling (the
  recipe of SELSA). The video's frames are shuffled once (``test.seed``) and tested in that order; each test frame
  is fused with its n−1 neighbours *in the shuffled order*: a window of n consecutive frames of the shuffled
  order around it (clamped at the order's ends), so every test frame gets a different random support set. From
  one step to the next, one frame enters the window and one leaves, as in ``causal``.

Every step's support frames are distinct and never include the test frame; at the start of a stream (causal)
or in a video shorter than n (shuffled_window) a step uses the frames that exist, fewer than n−1.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from dsfnet.config import TEST_MEMORIES
from dsfnet.data.sampling import shuffled_support_order
from dsfnet.errors import InputError



@dataclass(frozen=True)
class Step:
    """One test frame of a streamed plan.

    Attributes:
        test: the frame to detect on.
        support: the frames it is fused with (distinct, never ``test``). A support frame not yet in memory enters
            it at this step (``shuffled_window`` only: in ``causal`` every support frame is already there).
        keep: ``test`` enters the memory after this step, with the features its own test computed.
        release: frames that leave the memory after this step (their features can be dropped).
    """

    test: int
    support: tuple[int, ...]
    keep: bool
    release: tuple[int, ...]


class RecentMemory:
    """The ``capacity`` most recent frames offered (a sliding window over the past)."""

    def __init__(self, capacity: int):
        if capacity < 0:
            raise InputError(f"memory capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._frames: deque[int] = deque()

    @property
    def frames(self) -> tuple[int, ...]:
        """The frames held, oldest first."""
        return tuple(self._frames)

    def offer(self, frame: int) -> tuple[bool, Optional[int]]:
        """Offer the newest frame; returns ``(kept, evicted frame or None)``."""
        if self.capacity == 0:
            return False, None
        self._frames.append(frame)
        evicted = self._frames.popleft() if len(self._frames) > self.capacity else None
        return True, evicted


class SpreadMemory:
    """A uniform random sample of ``capacity`` frames of the whole past (reservoir sampling, Vitter's algorithm R).

    After t frames have been offered, every subset of ``capacity`` of them is equally likely to be held: the causal
    counterpart of the offline global shuffled set (the first n−1 frames of a random order of the whole video).
    Frame t (the (t+1)-th offered) is kept with probability capacity / (t+1), replacing a uniformly chosen member,
    so the memory changes less and less often as the stream goes on. Deterministic from ``seed``.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 0:
            raise InputError(f"memory capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._slots: list[int] = []
        self._offered = 0
        self._rng = np.random.default_rng(seed)

    @property
    def frames(self) -> tuple[int, ...]:
        """The frames held, in slot order."""
        return tuple(self._slots)

    def offer(self, frame: int) -> tuple[bool, Optional[int]]:
        """Offer the newest frame; returns ``(kept, evicted frame or None)``."""
        self._offered += 1
        if len(self._slots) < self.capacity:
            self._slots.append(frame)
            return True, None
        if self.capacity == 0:
            return False, None
        slot = int(self._rng.integers(0, self._offered))  # uniform over the frames offered so far
        if slot >= self.capacity:
            return False, None
        evicted, self._slots[slot] = self._slots[slot], frame
        return True, evicted


def make_memory(policy: str, capacity: int, seed: int = 0):
    """``recent`` -> :class:`RecentMemory`, ``spread`` -> :class:`SpreadMemory` (seeded)."""
    if policy == "recent":
        return RecentMemory(capacity)
    if policy == "spread":
        return SpreadMemory(capacity, seed)
    raise InputError(f"memory policy must be one of {TEST_MEMORIES}, got {policy!r}")


def causal_steps(frames: Iterable[int], memory) -> Iterator[Step]:
    """One step per frame of ``frames`` (consumed lazily, one frame per step): test it against the memory as it is,
    then offer it to the memory.

    ``frames`` is only advanced when the next step is asked for, so a plan never looks at a frame before the
    caller has finished the previous one.
    """
    for frame in frames:
        support = memory.frames
        kept, evicted = memory.offer(frame)
        yield Step(frame, support, kept, () if evicted is None else (evicted,))


def shuffled_window_steps(num_frames: int, n: int, seed: int = 0) -> list[Step]:
    """The steps of ``shuffled_window`` sampling for a video of ``num_frames`` frames.

    The order is ``shuffled_support_order(num_frames, seed)`` (the permutation the global ``shuffled`` set is the
    head of). Step i tests ``order[i]`` with the other frames of ``order[start_i : start_i + n]``, where
    ``start_i = clamp(i - (n - 1) // 2, 0, num_frames - n)``: its n−1 nearest neighbours in the shuffled order.

    A frame enters the memory at the first step that uses it as support (``keep`` on its own step when that comes
    later, so that its own test provides its features) and leaves after the last one (``release``).
    """
    if num_frames < 1 or n < 1:
        raise InputError(f"need num_frames >= 1 and n >= 1, got {num_frames} and {n}")
    order = [int(frame) for frame in shuffled_support_order(num_frames, seed)]
    width = min(n, num_frames)
    supports = []
    for step in range(num_frames):
        start = min(max(step - (width - 1) // 2, 0), num_frames - width)
        supports.append(tuple(frame for frame in order[start : start + width] if frame != order[step]))
    first_use: dict[int, int] = {}
    last_use: dict[int, int] = {}
    for step, support in enumerate(supports):
        for frame in support:
            first_use.setdefault(frame, step)
            last_use[frame] = step
    released: dict[int, list[int]] = {}
    for frame, step in last_use.items():
        released.setdefault(step, []).append(frame)
    return [Step(test, support, first_use.get(test, -1) > step, tuple(sorted(released.get(step, ()))))
            for step, (test, support) in enumerate(zip(order, supports))]
