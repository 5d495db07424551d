"""The predictor's pure parts: the support plan (which frames and which memory serve each test frame) and the
feature window (what is kept, and when it is dropped)."""

from __future__ import annotations

import pytest

from dsfnet.data.sampling import support_frames
from dsfnet.inference.plan import LocalSupport, NoSupport, SharedSupport, plan_support
from dsfnet.inference.window import FeatureWindow


def test_shuffled_plan_serves_every_test_frame_from_one_memory_without_itself():
    num_frames, n = 12, 4
    plan = plan_support(num_frames, n, "shuffled", seed=7)
    assert isinstance(plan, SharedSupport) and len(plan.pinned) == n
    memories = set()
    for t in range(num_frames):
        frames, exclude = plan.memory_of(t)
        memories.add(frames)
        read = [frame for position, frame in enumerate(frames) if position != exclude]
        assert read == sorted(support_frames(num_frames, t, n, "shuffled", seed=7))  # the same set, sorted
        assert t not in read
    assert memories == {tuple(sorted(plan.pinned))}
    assert all(plan.last_use(j) == num_frames - 1 for j in plan.pinned)
    outside = next(j for j in range(num_frames) if j not in plan.pinned)
    assert plan.last_use(outside) == outside  # only its own test frame reads it


def test_shuffled_plan_of_a_short_video_gives_each_frame_its_own_memory():
    plan = plan_support(2, 4, "shuffled", seed=0)
    for t in range(2):
        frames, exclude = plan.memory_of(t)
        assert exclude is None and list(frames) == sorted(support_frames(2, t, 4, "shuffled", seed=0))


def test_stride_plan_memory_is_the_support_and_uses_end_within_reach():
    plan = plan_support(20, 5, "stride", stride=3)
    assert isinstance(plan, LocalSupport) and plan.reach == 6 and not plan.pinned
    for t in range(20):
        frames, exclude = plan.memory_of(t)
        assert exclude is None and list(frames) == support_frames(20, t, 5, "stride", stride=3)
        assert all(plan.last_use(j) >= t for j in frames)  # nothing a test frame reads is dropped before it
    assert plan.last_use(3) == 9 and plan.last_use(18) == 19


def test_no_support_and_bad_sampling():
    plan = plan_support(5, 1, "shuffled")
    assert isinstance(plan, NoSupport) and plan.support(2) == [] and plan.memory_of(2) is None
    with pytest.raises(ValueError, match="sampling must be"):
        plan_support(5, 3, "causal")


def test_window_keeps_features_until_their_last_use():
    plan = plan_support(10, 5, "stride", stride=1)  # reach 2
    window: FeatureWindow[str] = FeatureWindow(plan)
    for frame in range(5):
        window.add(frame, f"conv4 of {frame}")
    window.release(2)  # test frame 2 done: frame 0 (last used by test frame 2) goes, 1 stays for test frame 3
    assert 0 not in window and 1 in window and window[4] == "conv4 of 4"
    assert len(window) == 4 and window.peak == 5
    window.release(9)
    assert len(window) == 0
