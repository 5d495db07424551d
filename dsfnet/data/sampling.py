"""Which frames support which: training clips and the evaluation sampling modes of the paper (DESIGN §3, §4).

All choices are deterministic: evaluation from ``seed``, training from the ``numpy.random.Generator`` the
caller derives from (seed, epoch, sample index).
"""

from __future__ import annotations

from dsfnet.errors import InputError

import numpy as np

__all__ = ["shuffled_support_order", "support_frames", "train_support_frames"]

SAMPLING_MODES = ("shuffled", "stride")


def shuffled_support_order(num_frames: int, seed: int) -> list[int]:
    """The video's frame positions ``0..num_frames-1`` shuffled once (global shuffled sampling)."""
    return np.random.default_rng(seed).permutation(num_frames).tolist()


def support_frames(num_frames: int, test_index: int, n: int, sampling: str, stride: int = 1,
                   seed: int = 0) -> list[int]:
    """The ``n - 1`` support frame positions of test frame ``test_index`` (``[]`` when ``n == 1``).

    ``"shuffled"``: the first ``n - 1`` entries of ``shuffled_support_order(num_frames, seed)`` other than
    ``test_index``, so all test frames of a video share one global support set (minus themselves). A video with
    fewer than ``n`` frames cycles through that order again (frames repeat); a one-frame video repeats its only
    frame.

    ``"stride"``: neighbours at offsets ``-s, +s, -2s, +2s, ...`` (an odd ``n - 1`` takes one more frame before
    than after), each clamped to ``[0, num_frames - 1]``, so near the video's ends the first / last frame
    repeats (it may then be the test frame itself), as in the stride sampling of FGFA / MEGA. Returned in
    temporal order.
    """
    if num_frames < 1 or not 0 <= test_index < num_frames:
        raise InputError(f"test frame {test_index} outside a video of {num_frames} frames")
    if n < 1 or stride < 1:
        raise InputError(f"need n >= 1 and stride >= 1, got n={n}, stride={stride}")
    if sampling not in SAMPLING_MODES:
        raise InputError(f"sampling must be one of {SAMPLING_MODES}, got {sampling!r}")
    need = n - 1
    if need == 0:
        return []
    if sampling == "shuffled":
        others = [i for i in shuffled_support_order(num_frames, seed) if i != test_index] or [test_index]
        return [others[i % len(others)] for i in range(need)]
    offsets = [(-(k + 1) // 2 if k % 2 else k // 2) * stride for k in range(1, need + 1)]
    return sorted(min(max(test_index + offset, 0), num_frames - 1) for offset in offsets)


def train_support_frames(num_frames: int, key_index: int, num_support: int,
                         rng: np.random.Generator) -> list[int]:
    """``num_support`` frames drawn uniformly from the rest of the snippet, in temporal order.

    Without replacement when the snippet has enough other frames, with replacement otherwise; a one-frame
    snippet repeats its key frame.
    """
    others = [i for i in range(num_frames) if i != key_index]
    if not others:
        return [key_index] * num_support
    chosen = rng.choice(len(others), size=num_support, replace=len(others) < num_support)
    return sorted(others[i] for i in chosen)
