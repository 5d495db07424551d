"""The ablation's statistics: paired t-test, Holm's correction, the bootstrap interval and the seed count."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from paired_stats import bootstrap_intervals, holm, paired_t_test, seeds_needed  # noqa: E402


def test_paired_t_test_matches_a_hand_computation():
    gains = [1.0, 2.0, 3.0, 4.0]
    result = paired_t_test(gains)
    # mean 2.5, sd sqrt(5/3), t = 2.5 / (sd / 2) = 3.873; Student's t with 3 df has the closed-form tail
    # 1/2 - (x / (1 + x^2) + atan(x)) / pi with x = t / sqrt(3)
    assert result["mean"] == 2.5 and result["sd"] == pytest.approx(math.sqrt(5 / 3))
    t = 2.5 / (math.sqrt(5 / 3) / 2)
    x = t / math.sqrt(3)
    tail = 0.5 - (x / (1 + x * x) + math.atan(x)) / math.pi
    assert result["t"] == pytest.approx(t) and result["p"] == pytest.approx(tail, rel=1e-9)
    assert paired_t_test([-g for g in gains])["p"] == pytest.approx(1 - tail, rel=1e-9)


def test_paired_t_test_degenerate_cases():
    assert paired_t_test([2.0])["p"] == 1.0
    assert paired_t_test([1.0, 1.0, 1.0])["p"] == 0.0
    assert paired_t_test([-1.0, -1.0])["p"] == 1.0


def test_holm_step_down_by_hand():
    result = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.2})
    # sorted a 0.01 x4 = 0.04, c 0.03 x3 = 0.09, b 0.04 x2 = 0.08 -> monotone 0.09, d 0.2 x1 -> 0.2
    assert {name: round(value["p_holm"], 10) for name, value in result.items()} == \
        {"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.2}
    assert [name for name, value in result.items() if value["significant"]] == ["a"]
    assert holm({"a": 0.6, "b": 0.7})["b"]["p_holm"] == 1.0


def test_bootstrap_interval_of_a_known_mean():
    """Gains = seed effect + video effect: the interval covers the true mean and shrinks with less noise."""
    rng = np.random.default_rng(0)
    seed_effects, video_effects = rng.normal(2.0, 1.0, 8), rng.normal(0.0, 3.0, 200)

    def gains_of(seed_counts, video_counts):
        seeds = np.average(seed_effects, weights=seed_counts)
        videos = np.average(video_effects, weights=video_counts)
        return {"gain": seeds + videos, "quiet": seeds + videos / 10}

    intervals = bootstrap_intervals(gains_of, 8, 200, draws=400)
    low, high = intervals["gain"]
    assert low < seed_effects.mean() + video_effects.mean() < high
    assert intervals["quiet"][1] - intervals["quiet"][0] < high - low
    # mostly the seed part: about 2 x 1.96 x (the seeds' spread) / sqrt(8) wide
    expected = 2 * 1.96 * seed_effects.std() / math.sqrt(8)
    assert intervals["quiet"][1] - intervals["quiet"][0] == pytest.approx(expected, rel=0.3)


def test_seeds_needed_grows_with_noise_and_matches_a_known_case():
    assert seeds_needed(3.0, 1.0) < seeds_needed(3.0, 3.0) < seeds_needed(3.0, 6.0)
    # effect size 1 at one-sided alpha 0.0125 (0.05 / 4 tests), power 0.8: simulated t-tests agree
    count = seeds_needed(1.0, 1.0)
    rng = np.random.default_rng(0)

    def simulated_power(pairs: int) -> float:
        gains = rng.normal(1.0, 1.0, (20000, pairs))
        t = gains.mean(1) / (gains.std(1, ddof=1) / math.sqrt(pairs))
        return float((t > stats.t.isf(0.0125, pairs - 1)).mean())

    assert simulated_power(count) > 0.79 and simulated_power(count - 2) < 0.8
    assert seeds_needed(-1.0, 1.0) == math.inf
