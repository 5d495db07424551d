"""Motion IoU (±10-frame window, same track, +1 IoU) and the motion groups, with hand-computed values."""

import numpy as np
import pytest

from dsfnet.evaluation.motion import MOTION_GROUPS, group_mask, motion_ious
from evalhelpers import video


def shifted(t):
    # A 10x10 box shifted right by t pixels: two such boxes d apart overlap (10-|d|)·10 of 200-(10-|d|)·10,
    # so IoU(d) = (10-|d|) / (10+|d|) for |d| <= 10 (0 at |d| = 10: the +1 intersection width is 0).
    return [t, 0, t + 9, 9]


def test_motion_iou_synthetic_track_by_hand():
    present = {0, 1, 2, 5, 11, 12, 25}
    frames = []
    for t in range(26):
        objects = []
        if t in present:
            objects.append((1, 7, shifted(t)))
        if t == 3:
            objects.append((2, 9, [50, 50, 80, 90]))     # track 9 seen in one frame only
        frames.append(objects)
    ious = motion_ious(video("v", frames))

    assert len(ious) == 26
    assert all(len(ious[t]) == len(frames[t]) for t in range(26))
    assert all(a.dtype == np.float64 for a in ious)
    # t=0: neighbours 1, 2, 5 (11 is 11 away): (9/11 + 8/12 + 5/15) / 3 = (9/11 + 1) / 3 = 20/33
    assert ious[0][0] == pytest.approx(20 / 33, abs=1e-12)
    # t=1: neighbours 0, 2, 5, 11 (d = 1, 1, 4, 10): (9/11 + 9/11 + 6/14 + 0/20) / 4
    assert ious[1][0] == pytest.approx((9 / 11 + 9 / 11 + 6 / 14 + 0.0) / 4, abs=1e-12)
    # t=5: neighbours 0, 1, 2, 11, 12 (d = 5, 4, 3, 6, 7); frames 3, 4, 6..10 lack the track
    assert ious[5][0] == pytest.approx((5 / 15 + 6 / 14 + 7 / 13 + 4 / 16 + 3 / 17) / 5, abs=1e-12)
    # t=12: neighbours 2 (d=10 → IoU 0, still counted), 5 (d=7), 11 (d=1); 0 and 1 are > 10 away
    assert ious[12][0] == pytest.approx((0.0 + 3 / 17 + 9 / 11) / 3, abs=1e-12)
    # t=25: nothing within 10 frames → 1.0
    assert ious[25][0] == 1.0
    # track 9, one sighting → 1.0; it does not disturb track 7 at t=3 (absent there)
    assert list(ious[3]) == [1.0]
    assert len(ious[4]) == 0


def test_motion_iou_separates_tracks_and_uses_frame_index():
    # Two tracks at the same place: only the same track id counts.
    frames = [[(1, 1, [0, 0, 9, 9]), (1, 2, [100, 0, 109, 9])],
              [(1, 1, [0, 0, 9, 9]), (1, 2, [105, 0, 114, 9])]]
    ious = motion_ious(video("v", frames))
    assert list(ious[0]) == [1.0, pytest.approx(5 / 15)]
    assert list(ious[1]) == [1.0, pytest.approx(5 / 15)]
    # Sub-sampled video: records at frame_index 0 and 11 are 11 frames apart → no neighbour → 1.0 each.
    far = motion_ious(video("w", [[(1, 1, [0, 0, 9, 9])], [(1, 1, [5, 0, 14, 9])]], frame_indices=[0, 11]))
    assert far[0][0] == 1.0 and far[1][0] == 1.0
    near = motion_ious(video("w", [[(1, 1, [0, 0, 9, 9])], [(1, 1, [5, 0, 14, 9])]], frame_indices=[0, 10]))
    assert near[0][0] == pytest.approx(5 / 15) and near[1][0] == pytest.approx(5 / 15)


def test_motion_groups_inclusive_bounds():
    assert MOTION_GROUPS == {"slow": (0.9, 1.0), "medium": (0.7, 0.9), "fast": (0.0, 0.7)}
    values = np.array([0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0])
    assert group_mask(values, "fast").tolist() == [True, True, True, False, False, False, False]
    assert group_mask(values, "medium").tolist() == [False, False, True, True, True, False, False]
    assert group_mask(values, "slow").tolist() == [False, False, False, False, True, True, True]
    assert group_mask(values, "all").all()
    with pytest.raises(ValueError):
        group_mask(values, "warp")
