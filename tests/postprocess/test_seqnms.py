"""Seq-NMS: hand-built videos, and equality with a direct loop implementation written from the paper."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from dsfnet.postprocess import seqnms
from dsfnet.postprocess.seqnms import SeqNMSParams, seq_nms


# ------------------------------------------------------------------------------------------- reference (paper)


def iou(a, b) -> float:
    """IoU of two boxes with continuous areas, written with scalars."""
    inter = (max(min(a[2], b[2]) - max(a[0], b[0]), 0.0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0))
    union = (max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0) + max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0) - inter)
    return inter / union if union > 0 else 0.0


def reference_seq_nms(frames, boxes, labels, scores, link_iou=0.5, nms_iou=0.3, rescore="avg"):
    """Han et al. 2016, one class at a time, one sequence at a time, the whole dynamic programme re-run from the
    first frame after every selection. Returns {detection index: new score} of the kept detections."""
    kept = {}
    boxes = [list(map(float, box)) for box in boxes]
    for label in sorted(set(labels)):
        members = [i for i in range(len(labels)) if labels[i] == label]
        by_frame = {}
        for i in members:  # input order within a frame
            by_frame.setdefault(frames[i], []).append(i)
        alive = set(members)
        while alive:
            best, back = {}, {}
            for frame in sorted(by_frame):
                for i in by_frame[frame]:
                    if i not in alive:
                        continue
                    top, arg = -math.inf, None
                    for j in by_frame.get(frame - 1, []):
                        if j in alive and iou(boxes[j], boxes[i]) > link_iou and best[j] > top:
                            top, arg = best[j], j
                    best[i], back[i] = (scores[i] + top, arg) if top > 0 else (scores[i] + 0.0, None)
            end = None
            for frame in sorted(by_frame):  # first maximum in frame order
                for i in by_frame[frame]:
                    if i in alive and (end is None or best[i] > best[end]):
                        end = i
            path = [end]
            while back[path[-1]] is not None:
                path.append(back[path[-1]])
            score = best[end] / len(path) if rescore == "avg" else max(scores[i] for i in path)
            for i in path:
                kept[i] = score
                for j in by_frame[frames[i]]:
                    if j in alive and j != i and iou(boxes[j], boxes[i]) >= nms_iou:
                        alive.discard(j)
            alive -= set(path)
    return kept


def random_video(rng, num_frames=12, num_tracks=4, num_classes=3, clutter=6, tie_scores=False):
    """Moving, jittering tracks with flickering scores, their duplicates, random clutter and missing frames."""
    frames, boxes, labels, scores = [], [], [], []
    tracks = [(rng.uniform(0, 200, 2), rng.uniform(-8, 8, 2), rng.uniform(20, 60, 2), rng.integers(1, num_classes + 1))
              for _ in range(num_tracks)]
    for t in range(num_frames):
        if rng.random() < 0.1:
            continue  # a frame without detections
        for origin, velocity, size, label in tracks:
            if rng.random() < 0.15:
                continue  # missed in this frame
            for _ in range(1 + rng.poisson(1.0)):  # the track's box and its jittered duplicates
                x, y = origin + velocity * t + rng.normal(0, 4, 2)
                w, h = size * rng.uniform(0.8, 1.2, 2)
                frames.append(t), boxes.append([x, y, x + w, y + h])
                labels.append(int(label) if rng.random() < 0.9 else int(rng.integers(1, num_classes + 1)))
                scores.append(rng.random())
        for _ in range(rng.poisson(clutter)):
            x, y = rng.uniform(0, 250, 2)
            w, h = rng.uniform(5, 60, 2)
            frames.append(t), boxes.append([x, y, x + w, y + h])
            labels.append(int(rng.integers(1, num_classes + 1))), scores.append(rng.random() * 0.5)
    scores = np.round(scores, 1) if tie_scores else np.asarray(scores)
    order = rng.permutation(len(frames))  # detections of a video need not come frame by frame
    return (np.asarray(frames)[order], np.asarray(boxes).reshape(-1, 4)[order], np.asarray(labels)[order],
            scores[order])


@pytest.mark.parametrize("rescore", ["avg", "max"])
@pytest.mark.parametrize("tie_scores", [False, True])
@pytest.mark.parametrize("pair_block", [seqnms.PAIR_BLOCK, 50])  # 50: box pairs compared a few boxes at a time
def test_equals_the_direct_loop_implementation_on_random_videos(rescore, tie_scores, pair_block, monkeypatch):
    monkeypatch.setattr(seqnms, "PAIR_BLOCK", pair_block)
    rng = np.random.default_rng(16)
    compared = 0
    for _ in range(25):
        frames, boxes, labels, scores = random_video(rng, tie_scores=tie_scores)
        link_iou, nms_iou = rng.choice([0.3, 0.5, 0.7]), rng.choice([0.2, 0.3, 0.5])
        keep, new = seq_nms(frames, boxes, labels, scores, SeqNMSParams(link_iou, nms_iou, rescore))
        expected = reference_seq_nms(frames.tolist(), boxes.tolist(), labels.tolist(), scores.tolist(),
                                     link_iou, nms_iou, rescore)
        assert keep.tolist() == sorted(expected)
        assert new.tolist() == [expected[i] for i in keep.tolist()]  # exactly, not approximately
        compared += len(keep)
        assert len(keep) < len(frames)  # something was suppressed
    assert compared > 500


def test_memory_follows_the_links_not_the_square_of_the_boxes_per_frame(monkeypatch):
    """Issue 26, case 4: 1,000 boxes of one class per frame make a million candidate pairs per frame pair (the old
    dense link matrices and pair lists: hundreds of MB); compared in blocks, the peak stays small."""
    monkeypatch.setattr(seqnms, "PAIR_BLOCK", 1 << 16)
    rng = np.random.default_rng(0)
    per_frame, num_frames = 1000, 5
    corner = rng.uniform(0, 2000, (per_frame * num_frames, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 40, corner.shape)], 1)
    frames = np.repeat(np.arange(num_frames), per_frame)
    tracemalloc.start()
    try:
        keep, _ = seq_nms(frames, boxes, np.ones(len(frames), np.int64), rng.random(len(frames)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(keep) > 0.9 * len(frames)  # sparse clutter: hardly anything overlaps
    assert peak < 40e6, f"{peak / 1e6:.0f} MB"


# ------------------------------------------------------------------------------------------- hand-built videos


def box_at(t, x0=10.0, speed=3.0, size=40.0):
    return [x0 + speed * t, 20.0, x0 + speed * t + size, 20.0 + size]


def test_flickering_true_object_gets_a_stable_high_score():
    flicker = [0.9, 0.9, 0.15, 0.9, 0.9, 0.1, 0.9, 0.9]  # the object is hard to see in frames 2 and 5
    frames = np.arange(8)
    boxes = [box_at(t) for t in frames]
    keep, new = seq_nms(frames, boxes, [1] * 8, flicker, SeqNMSParams(rescore="avg"))
    assert keep.tolist() == list(range(8))
    assert new == pytest.approx(np.full(8, np.mean(flicker)))  # one score for the whole track
    assert new.min() > 0.7 > max(flicker[2], flicker[5])
    _, maxed = seq_nms(frames, boxes, [1] * 8, flicker, SeqNMSParams(rescore="max"))
    assert maxed.tolist() == [0.9] * 8


def test_isolated_false_positive_is_not_promoted():
    frames = list(range(6)) + [3, 3]
    boxes = [box_at(t) for t in range(6)] + [[200.0, 150.0, 240.0, 190.0],  # far from everything
                                              box_at(3)]                    # on the object, another class
    labels = [1] * 6 + [1, 2]
    scores = [0.8] * 6 + [0.4, 0.3]
    keep, new = seq_nms(frames, boxes, labels, scores)
    assert keep.tolist() == list(range(8))
    assert new[6] == 0.4 and new[7] == 0.3  # one-frame sequences keep their scores
    assert new[:6].tolist() == pytest.approx([0.8] * 6)


def test_boxes_suppressed_by_a_sequence_are_removed():
    frames, boxes, labels, scores = [], [], [], []
    for t in range(5):
        x1, y1, x2, y2 = box_at(t)
        for box, label, score in (([x1, y1, x2, y2], 1, 0.9),            # the object
                                  ([x1 + 12, y1, x2 + 12, y2], 1, 0.5),  # duplicate, IoU 0.54 with it
                                  ([x1 + 25, y1, x2 + 25, y2], 1, 0.4),  # IoU 0.23 < 0.3: a box of its own
                                  ([x1 + 12, y1, x2 + 12, y2], 2, 0.5)):  # same overlap, another class
            frames.append(t), boxes.append(box), labels.append(label), scores.append(score)
    assert iou(boxes[0], boxes[1]) >= 0.3 > iou(boxes[0], boxes[2])
    keep, new = seq_nms(frames, boxes, labels, scores)
    kept = set(keep.tolist())
    assert not kept & {4 * t + 1 for t in range(5)}  # every duplicate of the object is gone
    assert {4 * t for t in range(5)} | {4 * t + 3 for t in range(5)} <= kept
    # the far-shifted boxes move with the object, so they form a sequence of their own
    assert {4 * t + 2 for t in range(5)} <= kept


def test_a_frame_without_detections_breaks_the_sequence():
    frames = [0, 1, 3, 4]  # frame 2 has no detections
    keep, new = seq_nms(frames, [box_at(t, speed=0) for t in frames], [1] * 4, [0.9, 0.9, 0.1, 0.1])
    assert keep.tolist() == [0, 1, 2, 3]
    assert new.tolist() == pytest.approx([0.9, 0.9, 0.1, 0.1])


def test_empty_video_and_bad_settings():
    keep, new = seq_nms([], np.zeros((0, 4)), [], [])
    assert keep.shape == (0,) and new.shape == (0,)
    with pytest.raises(ValueError, match="link_iou"):
        SeqNMSParams(link_iou=1.5)
    with pytest.raises(ValueError, match="rescore"):
        SeqNMSParams(rescore="mean")
