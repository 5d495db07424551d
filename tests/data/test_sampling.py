"""Evaluation support frames (shuffled / stride) and training support frames, with hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from dsfnet.data.sampling import shuffled_support_order, support_frames, train_support_frames


def test_shuffled_order_is_a_seeded_permutation():
    order = shuffled_support_order(10, seed=4)
    assert sorted(order) == list(range(10))
    assert order == shuffled_support_order(10, seed=4)
    assert order != shuffled_support_order(10, seed=5)


def test_shuffled_support_is_one_global_set_without_the_test_frame():
    order = shuffled_support_order(12, seed=7)
    for test in range(12):
        support = support_frames(12, test, n=5, sampling="shuffled", seed=7)
        assert support == [i for i in order if i != test][:4]
        assert test not in support
    # Test frames outside the first n-1 entries share exactly the same support set.
    outside = [t for t in range(12) if t not in order[:4]]
    assert {tuple(support_frames(12, t, 5, "shuffled", seed=7)) for t in outside} == {tuple(order[:4])}


def test_shuffled_short_video_repeats():
    order = shuffled_support_order(3, seed=0)
    others = [i for i in order if i != 1]
    assert support_frames(3, 1, n=6, sampling="shuffled", seed=0) == others * 2 + others[:1]
    assert support_frames(1, 0, n=4, sampling="shuffled") == [0, 0, 0]


def test_stride_support():
    assert support_frames(100, 50, n=5, sampling="stride", stride=3) == [44, 47, 53, 56]
    assert support_frames(100, 50, n=4, sampling="stride", stride=2) == [46, 48, 52]  # odd n-1: one more before
    assert support_frames(10, 1, n=5, sampling="stride", stride=2) == [0, 0, 3, 5]  # clamped at the start
    assert support_frames(10, 9, n=3, sampling="stride", stride=1) == [8, 9]  # clamped at the end
    assert support_frames(1, 0, n=3, sampling="stride") == [0, 0]


def test_n_one_and_bad_arguments():
    assert support_frames(5, 2, n=1, sampling="shuffled") == []
    assert support_frames(5, 2, n=1, sampling="stride") == []
    with pytest.raises(ValueError, match="outside"):
        support_frames(5, 5, n=3, sampling="stride")
    with pytest.raises(ValueError, match="sampling"):
        support_frames(5, 1, n=3, sampling="random")


def test_train_support_frames():
    rng = np.random.default_rng(0)
    for _ in range(20):
        support = train_support_frames(6, 2, 2, rng)
        assert len(support) == 2 and 2 not in support and support == sorted(support) and len(set(support)) == 2
    assert train_support_frames(2, 0, 3, rng) == [1, 1, 1]  # too few frames: with replacement
    assert train_support_frames(1, 0, 2, rng) == [0, 0]
    a = train_support_frames(40, 5, 2, np.random.default_rng([1, 2, 3]))
    assert a == train_support_frames(40, 5, 2, np.random.default_rng([1, 2, 3]))
