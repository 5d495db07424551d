"""The feature window of a streamed video: which frames' features are kept, and when each is dropped.

A frame's features (its raw conv4) enter when the frame is decoded and leave after the last test frame that
reads them (``plan.last_use``): the plan's pinned frames stay for the whole video, the others for as long as a
nearby test frame may use them. Memory therefore does not grow with the video's length (about ``2·reach + 1``
maps in stride sampling, n + 1 in shuffled sampling).
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

Features = TypeVar("Features")


class UsePlan(Protocol):
    def last_use(self, j: int) -> int: ...


class FeatureWindow(Generic[Features]):
    """Features by frame index, kept until their last use; ``peak`` is the most held at once."""

    def __init__(self, plan: UsePlan):
        self.plan = plan
        self._features: dict[int, Features] = {}
        self.peak = 0

    def __contains__(self, frame: int) -> bool:
        return frame in self._features

    def __getitem__(self, frame: int) -> Features:
        return self._features[frame]

    def __len__(self) -> int:
        return len(self._features)

    def add(self, frame: int, features: Features) -> None:
        self._features[frame] = features
        self.peak = max(self.peak, len(self._features))

    def release(self, done: int) -> None:
        """Drop the features no test frame after ``done`` reads (call once test frame ``done`` is finished)."""
        for frame in [frame for frame in self._features if self.plan.last_use(frame) <= done]:
            del self._features[frame]
