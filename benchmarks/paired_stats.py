"""Statistics over paired gains (used by ablation.py): one-sided paired t-tests, Holm's correction, and the
bootstrap interval of a mean gain over seeds and held-out videos.

A *paired gain* is the difference of two variants trained with the same seed (same shared initial weights, same
data order) and scored on the same held-out videos, so the seed-to-seed and video-to-video variation that both
share cancels out of it.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from scipy import stats


def paired_t_test(gains: Sequence[float]) -> dict:
    """One-sided test of "the mean paired gain is > 0" (Student's t with len(gains) - 1 degrees of freedom).

    Returns:
        ``{"mean", "sd", "t", "p"}``; ``p`` is 1.0 for fewer than two gains and, when every gain is equal,
        0.0 if they are positive (no spread: the effect is certain for these seeds) and 1.0 otherwise.
    """
    values = np.asarray(gains, np.float64)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2:
        return {"mean": mean, "sd": math.nan, "t": math.nan, "p": 1.0}
    sd = float(values.std(ddof=1))
    if sd == 0:
        return {"mean": mean, "sd": 0.0, "t": math.inf if mean > 0 else -math.inf, "p": 0.0 if mean > 0 else 1.0}
    t = mean / (sd / math.sqrt(len(values)))
    return {"mean": mean, "sd": sd, "t": t, "p": float(stats.t.sf(t, len(values) - 1))}


def holm(p_values: dict[str, float], alpha: float = 0.05) -> dict[str, dict]:
    """Holm's step-down correction of a family of tests.

    Returns:
        name → ``{"p", "p_holm", "significant"}``; ``p_holm`` is the adjusted p-value (monotone in the step-down
        order, capped at 1), significant when it is ≤ ``alpha``.
    """
    order = sorted(p_values, key=p_values.get)
    count = len(order)
    adjusted, running = {}, 0.0
    for rank, name in enumerate(order):
        running = max(running, min(1.0, (count - rank) * p_values[name]))
        adjusted[name] = running
    return {name: {"p": p_values[name], "p_holm": adjusted[name], "significant": adjusted[name] <= alpha}
            for name in p_values}


def bootstrap_intervals(gains_of: Callable[[np.ndarray, np.ndarray], dict[str, float]], num_seeds: int,
                        num_videos: int, draws: int = 1000, level: float = 0.95,
                        seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile intervals of mean paired gains, resampling seeds and held-out videos together.

    Args:
        gains_of: ``(seed_counts int [S], video_counts int [V]) -> {name: gain}``: each mean gain over seeds
            weighted by ``seed_counts``, every run scored on the held-out videos weighted by ``video_counts`` (how
            often each was drawn).
        draws: bootstrap draws; each draws ``num_seeds`` seeds and ``num_videos`` videos with replacement.
    Returns:
        name → ``(low, high)``.
    """
    generator = np.random.default_rng(seed)
    values: dict[str, list[float]] = {}
    for _ in range(draws):
        seed_counts = np.bincount(generator.integers(0, num_seeds, num_seeds), minlength=num_seeds)
        video_counts = np.bincount(generator.integers(0, num_videos, num_videos), minlength=num_videos)
        for name, gain in gains_of(seed_counts, video_counts).items():
            values.setdefault(name, []).append(gain)
    tail = (1 - level) / 2
    return {name: tuple(float(q) for q in np.quantile(np.asarray(drawn), [tail, 1 - tail]))
            for name, drawn in values.items()}


def seeds_needed(gain: float, sd: float, alpha: float = 0.05 / 4, power: float = 0.8) -> int:
    """Seeds for a one-sided paired t-test at ``alpha`` to detect a mean gain ``gain`` with paired-gain spread
    ``sd`` at the given power (the smallest S whose noncentral-t power reaches it; at least 2)."""
    if gain <= 0:
        return math.inf
    for count in range(2, 1000):
        df = count - 1
        critical = stats.t.isf(alpha, df)
        if stats.nct.sf(critical, df, gain / (sd / math.sqrt(count))) >= power:
            return count
    return math.inf
