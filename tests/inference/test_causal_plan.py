"""Streamed support plans: causal memories (recent, spread) and shuffled_window, as pure bookkeeping."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from dsfnet.data.sampling import shuffled_support_order
from dsfnet.inference.causal import (RecentMemory, SpreadMemory, causal_steps, make_memory,
                                     shuffled_window_steps)


def replay(steps) -> list[int]:
    """Apply the steps' keep / release to a set and check every support frame is a past frame in memory (or, for
    frames entering at their first use, simply present); returns the memory size after each step."""
    memory: set[int] = set()
    sizes = []
    for step in steps:
        assert step.test not in step.support
        assert len(set(step.support)) == len(step.support), f"frame repeated in the clip of {step.test}"
        memory.update(step.support)
        if step.keep:
            memory.add(step.test)
        assert set(step.release) <= memory
        memory.difference_update(step.release)
        sizes.append(len(memory))
    return sizes


def test_recent_memory_is_the_n_minus_1_latest_frames():
    steps = list(causal_steps(range(10), RecentMemory(3)))
    assert [step.support for step in steps[:5]] == [(), (0,), (0, 1), (0, 1, 2), (1, 2, 3)]
    assert all(step.support == tuple(range(step.test - 3, step.test)) for step in steps[3:])
    assert [step.release for step in steps[2:5]] == [(), (0,), (1,)]
    assert max(replay(causal_steps(range(50), RecentMemory(3)))) == 3


@pytest.mark.parametrize("capacity", [0, 1, 4, 20])
def test_spread_memory_is_bounded_distinct_and_only_holds_past_frames(capacity):
    memory = SpreadMemory(capacity, seed=3)
    for step in causal_steps(range(300), memory):
        assert all(frame < step.test for frame in step.support)
        assert len(step.support) == min(capacity, step.test)
        assert len(memory.frames) <= capacity
    assert max(replay(causal_steps(range(300), SpreadMemory(capacity, seed=3)))) == min(capacity, 300)


def test_spread_memory_is_deterministic_from_the_seed():
    plan = lambda seed: [step.support for step in causal_steps(range(200), make_memory("spread", 5, seed))]
    assert plan(7) == plan(7)
    assert plan(7) != plan(8)


def test_spread_memory_is_a_uniform_sample_of_the_whole_past():
    """After 40 frames, each of them is held with probability 4/40 (reservoir sampling), early ones included."""
    counts = Counter()
    runs = 3000
    for seed in range(runs):
        memory = SpreadMemory(4, seed)
        for _ in causal_steps(range(40), memory):
            pass
        counts.update(memory.frames)
    frequency = np.array([counts[frame] / runs for frame in range(40)])
    # binomial std of one frequency: sqrt(0.1 * 0.9 / 3000) = 0.0055; 4.5 sigma
    assert np.abs(frequency - 0.1).max() < 0.025, frequency
    assert abs(frequency[:10].mean() - frequency[30:].mean()) < 0.015


def test_causal_steps_never_read_ahead():
    delivered = []

    def stream():
        for frame in range(6):
            delivered.append(frame)
            yield frame

    for step in causal_steps(stream(), RecentMemory(2)):
        assert delivered[-1] == step.test  # the plan has not asked for the next frame yet
        assert set(step.support) <= set(delivered[:-1])


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="recent"):
        make_memory("latest", 3)


@pytest.mark.parametrize("num_frames,n", [(30, 5), (30, 4), (7, 21), (1, 5), (12, 1), (9, 9)])
def test_shuffled_window_fuses_each_frame_with_its_neighbours_in_the_shuffled_order(num_frames, n):
    order = shuffled_support_order(num_frames, 11)
    steps = shuffled_window_steps(num_frames, n, seed=11)
    assert [step.test for step in steps] == order  # tested in the shuffled order, each frame once
    width = min(n, num_frames)
    for position, step in enumerate(steps):
        assert len(step.support) == width - 1
        positions = sorted(order.index(frame) for frame in step.support + (step.test,))
        assert positions == list(range(positions[0], positions[0] + width))  # consecutive in the order
        if width - 1 <= 2 * position <= 2 * (num_frames - width) + width - 1:  # not clamped at the ends
            assert positions[0] == position - (width - 1) // 2
    sizes = replay(steps)
    assert max(sizes) <= width
    assert sizes[-1] == 0  # everything released at the end


def test_shuffled_window_gives_frames_different_support_sets():
    steps = shuffled_window_steps(40, 5, seed=0)
    assert len({frozenset(step.support) for step in steps}) > 30
    # one frame enters and one leaves per step once the window slides
    entering = [len(set(b.support + (b.test,)) - set(a.support + (a.test,))) for a, b in itertools.pairwise(steps)]
    assert Counter(entering)[1] >= 35
