"""Devkit mAP and motion-group mAP on hand-built cases; every expected value is worked out in the comments.

Boxes use the +1 convention: [0, 0, 99, 99] is 100 x 100 pixels.
"""

import numpy as np
import pytest

from dsfnet.evaluation.vid_map import average_precision, evaluate, iou_thresholds
from evalhelpers import dataset, dets, video

A, B, C = 1, 2, 3
BIG = [0, 0, 99, 99]


def approx(x):
    return pytest.approx(x, abs=1e-12)


def test_threshold_formula():
    # 10 x 10: 100 / (20 * 20) = 0.25;  100 x 100: 10000 / 12100 > 0.5 → 0.5;  30 x 20: 600 / (40 * 30) = 0.5
    assert iou_thresholds(np.array([[0, 0, 9, 9], BIG, [5, 5, 34, 24]])).tolist() == [0.25, 0.5, 0.5]


def test_average_precision_envelope():
    # recall 0.5, 0.5, 1 with precision 1, 0.5, 2/3 → envelope 1, 2/3, 2/3 → 0.5·1 + 0.5·2/3 = 5/6
    assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == approx(5 / 6)
    # nothing detected → 0
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0


def test_tiny_box_threshold_decides_tp_vs_fp():
    # Frame 0: class a GT 10 x 10 (thr 0.25); frame 1: class b GT 100 x 100 (thr 0.5).
    ds = dataset(video("v", [[(A, 1, [0, 0, 9, 9])], [(B, 2, BIG)]]))
    # Both detections have IoU 0.4 with their GT:
    #   a: [0,0,9,24] is 10 x 25 = 250 px and contains the GT (100 px) → 100 / 250 = 0.4 ≥ 0.25 → TP
    #   b: [0,0,99,249] is 100 x 250 = 25000 px and contains the GT (10000 px) → 0.4 < 0.5 → FP
    r = evaluate(ds, dets([(0, A, 0.9, [0, 0, 9, 24]), (1, B, 0.9, [0, 0, 99, 249])]), motion=False)
    assert r.per_class_ap == {"a": 1.0, "b": 0.0, "c": None}
    assert r.map == approx(0.5)            # (1 + 0) / 2; class c has no GT
    # IoU exactly equal to the threshold counts (≥): [0,0,9,39] is 400 px → 100 / 400 = 0.25 = thr
    r = evaluate(ds, dets([(0, A, 0.9, [0, 0, 9, 39])]), motion=False)
    assert r.per_class_ap["a"] == 1.0
    # just below: [0,0,9,40] is 410 px → 100/410 < 0.25 → FP
    r = evaluate(ds, dets([(0, A, 0.9, [0, 0, 9, 40])]), motion=False)
    assert r.per_class_ap["a"] == 0.0


def test_duplicates_of_one_gt():
    ds = dataset(video("v", [[(A, 1, BIG)], [(A, 1, BIG)]]))
    # frame 0: 0.9 exact → TP, 0.8 duplicate (GT used) → FP; frame 1: 0.7 → TP.
    # score order TP, FP, TP: recall 1/2, 1/2, 1; precision 1, 1/2, 2/3 → AP = 1/2·1 + 1/2·2/3 = 5/6
    r = evaluate(ds, dets([(0, A, 0.9, BIG), (0, A, 0.8, [1, 1, 99, 99]), (1, A, 0.7, BIG)]), motion=False)
    assert r.per_class_ap["a"] == approx(5 / 6)
    recall, precision = r.pr_curves["a"]
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])
    # Three identical detections of a single GT: TP, FP, FP → recall reaches 1 at precision 1 → AP 1
    ds1 = dataset(video("v", [[(A, 1, BIG)]]))
    r = evaluate(ds1, dets([(0, A, 0.9, BIG), (0, A, 0.8, BIG), (0, A, 0.7, BIG)]), motion=False)
    np.testing.assert_allclose(r.pr_curves["a"][1], [1.0, 1 / 2, 1 / 3])


def test_detection_overlapping_two_gt_takes_the_best_free_one():
    # GT P = [0,0,99,99], Q = [50,0,149,99] (both class a, 100 x 100, thr 0.5).
    P, Q = BIG, [50, 0, 149, 99]
    ds = dataset(video("v", [[(A, 1, P), (A, 2, Q)]]))
    # d1 = [20,0,119,99] (0.9): IoU(P) = 80·100 / (20000 − 8000) = 2/3, IoU(Q) = 70·100 / 13000 = 7/13 → P
    # d2 = [40,0,139,99] (0.8): IoU(P) = 6000 / 14000 = 3/7 < 0.5, IoU(Q) = 9000 / 11000 = 9/11 → Q
    # both TP → AP 1 (matching d1 to Q instead would leave d2 a FP).
    r = evaluate(ds, dets([(0, A, 0.9, [20, 0, 119, 99]), (0, A, 0.8, [40, 0, 139, 99])]), motion=False)
    np.testing.assert_allclose(r.pr_curves["a"][0], [0.5, 1.0])
    assert r.per_class_ap["a"] == 1.0
    # When the best GT is taken, the next best passing its threshold is used:
    # d1 = P exactly (IoU(Q) = 5000/15000 = 1/3) → P; d2 = [20,0,119,99]: P used, Q 7/13 ≥ 0.5 → TP
    r = evaluate(ds, dets([(0, A, 0.9, P), (0, A, 0.8, [20, 0, 119, 99])]), motion=False)
    assert r.per_class_ap["a"] == 1.0
    # A detection of another class never matches: class b at P is a FP for b (b has no GT → None).
    r = evaluate(ds, dets([(0, B, 0.95, P), (0, A, 0.9, P)]), motion=False)
    assert r.per_class_ap == {"a": approx(0.5), "b": None, "c": None}   # recall 1/2 at precision 1


def test_frame_without_gt_gives_fp():
    ds = dataset(video("v", [[(A, 1, BIG)], []]))
    # FP (0.9, frame 1 without GT) then TP (0.8): recall 0, 1; precision 0, 1/2 → AP = 1 · 1/2
    r = evaluate(ds, dets([(1, A, 0.9, BIG), (0, A, 0.8, BIG)]), motion=False)
    assert r.per_class_ap["a"] == approx(0.5)


def test_class_without_gt_is_left_out_of_the_mean():
    ds = dataset(video("v", [[(A, 1, BIG), (B, 2, [300, 300, 399, 399])]]))
    # a: TP → 1; b: only a FP far away → 0; c: detections but no GT → None, not in the mean
    r = evaluate(ds, dets([(0, A, 0.9, BIG), (0, B, 0.9, [600, 600, 699, 699]), (0, C, 0.9, BIG)]),
                 motion=False)
    assert r.per_class_ap == {"a": 1.0, "b": 0.0, "c": None}
    assert r.map == approx(0.5)
    assert r.num_gt == {"a": 1, "b": 1, "c": 0}
    # A class with GT and no detection at all has AP 0.
    r = evaluate(ds, dets([(0, A, 0.9, BIG)]), motion=False)
    assert r.per_class_ap["b"] == 0.0 and r.map == approx(0.5)


def test_no_detections_and_zero_score():
    ds = dataset(video("v", [[(A, 1, BIG)]]))
    r = evaluate(ds, dets([]))
    assert r.map == 0.0 and r.motion_map["slow"] == 0.0 and r.motion_map["fast"] is None
    # score-0 detections count
    assert evaluate(ds, dets([(0, A, 0.0, BIG)])).map == 1.0


def _moving_scene():
    """V1 (2 frames): track 1 class a jumps far (motion IoU 0 → fast), track 2 class b static (1.0 → slow).
    V2 (1 frame): class a alone (1.0 → slow)."""
    a0, a1 = BIG, [300, 300, 399, 399]
    b = [30, 0, 129, 99]
    v1 = video("v1", [[(A, 1, a0), (B, 2, b)], [(A, 1, a1), (B, 2, b)]])
    v2 = video("v2", [[(A, 1, BIG)]])
    return dataset(v1, v2), a0, a1, b


def test_motion_group_matched_ignored_gt_is_neither_and_is_used():
    ds, a0, a1, b = _moving_scene()     # frame positions: v1/0 → 0, v1/1 → 1, v2/0 → 2
    d = dets([
        (0, A, 0.9, a0),                 # matches a0 (fast)
        # duplicate: a0 already used. IoU(a0) = 8000/12000 = 2/3, IoU(b, class b) = 90·100/11000 = 9/11
        (0, A, 0.8, [20, 0, 119, 99]),
        (2, A, 0.7, BIG),                # matches v2's GT (slow)
        (0, B, 0.6, b), (1, B, 0.5, b),  # match b in both frames (slow)
    ])
    r = evaluate(ds, d)
    # all: class a npos 3: TP, FP, TP → recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3
    #      AP = 1/3·1 + 1/3·2/3 = 5/9; class b AP 1 → mAP (5/9 + 1) / 2 = 7/9
    assert r.per_class_ap["a"] == approx(5 / 9)
    assert r.map == approx(7 / 9)
    # slow: class a npos 1 (v2). 0.9 matched to ignored a0 → neither; 0.8 unmatched, o_i = 2/3 (a0 ignored),
    #   o_n = 9/11 (b in group) → o_n > o_i → FP 1 (had the used a0 been matchable again it would be neither);
    #   0.7 TP. cum tp 0, 0, 1; fp 0, 1, 1 → recall 0, 0, 1; precision 0, 0, 1/2 → AP 1/2.
    #   class b: 2 in-group GT, both found → 1. slow mAP = (1/2 + 1) / 2 = 3/4
    assert r.motion_per_class_ap["slow"] == {"a": approx(0.5), "b": 1.0, "c": None}
    assert r.motion_map["slow"] == approx(0.75)
    # fast: class a npos 2 (a0, a1). 0.9 TP; 0.8: o_i = 9/11 (b ignored) > o_n = 2/3 → FP 0;
    #   0.7 matched to ignored (v2) → neither → recall 1/2 at precision 1 → AP 1/2.
    #   class b has no fast GT → None → fast mAP = 1/2
    assert r.motion_per_class_ap["fast"] == {"a": approx(0.5), "b": None, "c": None}
    assert r.motion_map["fast"] == approx(0.5)
    # medium: no GT at all → None
    assert r.motion_map["medium"] is None
    assert r.motion_num_gt["slow"] == {"a": 1, "b": 2, "c": 0}
    assert r.motion_num_gt["fast"] == {"a": 2, "b": 0, "c": 0}


def test_motion_group_fp_in_frame_without_gt_is_fractional():
    # v1: class a track jumps far → 2 fast GT; v2: one slow GT; v3: a frame with no GT.
    # All GT: 3 → fraction in slow = 1/3, in fast = 2/3.
    v1 = video("v1", [[(A, 1, BIG)], [(A, 1, [300, 300, 399, 399])]])
    v2 = video("v2", [[(A, 1, BIG)]])
    v3 = video("v3", [[]])
    ds = dataset(v1, v2, v3)             # positions: 0, 1 (v1), 2 (v2), 3 (v3)
    d = dets([(3, A, 0.9, BIG),          # unmatched, frame without GT: o_i = o_n = −1 → tie → group fraction
              (2, A, 0.8, BIG),          # slow GT
              (0, A, 0.7, BIG)])         # fast GT
    r = evaluate(ds, d)
    assert r.motion_gt_fraction == {"slow": approx(1 / 3), "medium": 0.0, "fast": approx(2 / 3)}
    # slow: (tp 0, fp 1/3), (1, 0), (neither) → precision at recall 1 = 1 / (1 + 1/3) = 3/4 → AP 3/4
    assert r.motion_per_class_ap["slow"]["a"] == approx(3 / 4)
    # fast: (0, 2/3), (neither), (1, 0) → recall 1/2 at precision 1 / (1 + 2/3) = 3/5 → AP 1/2 · 3/5 = 3/10
    assert r.motion_per_class_ap["fast"]["a"] == approx(3 / 10)
    # all: FP, TP, TP with npos 3 → precision 2/3 at recall 2/3 (envelope) → AP 2/3 · 2/3 = 4/9
    assert r.per_class_ap["a"] == approx(4 / 9)


def test_motion_group_tie_in_frame_with_gt_uses_the_ignored_fraction():
    # Frame 0 and 1 of v: track 1 (a) and track 2 (b) jump far (fast), track 3 (a) stays (slow).
    # Each frame has 3 GT: 2 fast, 1 slow.
    frames = [[(A, 1, BIG), (B, 2, [0, 200, 99, 299]), (A, 3, [200, 0, 249, 49])],
              [(A, 1, [300, 300, 399, 399]), (B, 2, [400, 0, 499, 99]), (A, 3, [200, 0, 249, 49])]]
    ds = dataset(video("v", frames))
    d = dets([(0, A, 0.9, [600, 600, 649, 649]),   # overlaps nothing: o_i = o_n = 0 → tie
              (0, A, 0.8, [200, 0, 249, 49]),      # slow track 3
              (0, A, 0.7, BIG)])                   # fast track 1
    r = evaluate(ds, d)
    # DESIGN §6: on a tie in a frame with GT the FP weight is the fraction of the frame's GT that are ignored.
    # slow: ignored = 2 of 3 → weight 2/3. class a npos 2 (track 3 twice): (0, 2/3), (1, 0), (neither)
    #   → precision 1 / (1 + 2/3) = 3/5 at recall 1/2 → AP 3/10
    assert r.motion_per_class_ap["slow"]["a"] == approx(3 / 10)
    # fast: ignored = 1 of 3 → weight 1/3. class a npos 2 (track 1 twice): (0, 1/3), (neither), (1, 0)
    #   → precision 1 / (1 + 1/3) = 3/4 at recall 1/2 → AP 3/8
    assert r.motion_per_class_ap["fast"]["a"] == approx(3 / 8)
    # b: no detections; slow b has no GT → None; fast b 0 → fast mAP (3/8 + 0) / 2
    assert r.motion_per_class_ap["slow"]["b"] is None
    assert r.motion_map["slow"] == approx(3 / 10)
    assert r.motion_map["fast"] == approx(3 / 16)


def test_perfect_detections_score_one_everywhere():
    rng = np.random.default_rng(0)
    videos = []
    for v, speed in enumerate([0, 1, 4, 40]):      # slow, medium (IoU ≈ 0.83), fast, fast
        frames = []
        for t in range(15):
            objects = []
            for k in range(2):
                x = 50 + 300 * k + speed * t
                objects.append((1 + (v + k) % 3, k, [x, 40, x + 60, 100]))
            frames.append(objects)
        videos.append(video(f"v{v}", frames))
    ds = dataset(*videos)
    rows = []
    for p, frame in enumerate(ds.frames()):
        for box, label in zip(frame.boxes, frame.labels):
            rows.append((p, int(label), float(rng.uniform(0.01, 1.0)), box.tolist()))
    r = evaluate(ds, dets(rows))
    assert r.map == 1.0
    assert set(r.per_class_ap.values()) == {1.0}
    for g in ("slow", "medium", "fast"):
        assert sum(r.motion_num_gt[g].values()) > 0, g
        assert r.motion_map[g] == 1.0
        assert all(ap in (1.0, None) for ap in r.motion_per_class_ap[g].values())


def test_input_validation():
    ds = dataset(video("v", [[(A, 1, BIG)]]))
    with pytest.raises(ValueError, match="frame positions"):
        evaluate(ds, dets([(1, A, 0.5, BIG)]))
    with pytest.raises(ValueError, match="labels"):
        evaluate(ds, dets([(0, 4, 0.5, BIG)]))


def test_extra_groups_follow_the_motion_group_rules():
    from dsfnet.evaluation.motion import dataset_motion_ious, group_mask

    # one static track (slow) and one jumping track (fast), two frames each
    gt = dataset(video("v", [[(1, 1, [0, 0, 99, 99]), (2, 2, [300, 300, 349, 349])],
                             [(1, 1, [0, 0, 99, 99]), (2, 2, [600, 600, 649, 649])]]))
    detections = dets([(0, 1, 0.9, [0, 0, 99, 99]), (1, 2, 0.8, [600, 600, 649, 649]),
                       (1, 2, 0.7, [0, 0, 49, 49])])
    ious = np.concatenate(dataset_motion_ious(gt))
    masks = {"my_slow": group_mask(ious, "slow"), "everything": np.ones(4, bool)}
    result = evaluate(gt, detections, extra_groups=masks)
    assert result.motion_map["my_slow"] == result.motion_map["slow"]
    assert result.motion_per_class_ap["my_slow"] == result.motion_per_class_ap["slow"]
    # everything in the group = no ignored GT = the plain mAP: class 1 AP 1/2 (1 of 2 GT found, precision 1),
    # class 2: TP at 0.8 then FP at 0.7, 1 of 2 GT -> AP 1/2
    assert result.motion_map["everything"] == result.map == 0.5
    with pytest.raises(ValueError, match="group 'bad' has"):
        evaluate(gt, detections, extra_groups={"bad": np.ones(3, bool)})
