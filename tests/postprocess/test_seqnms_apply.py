"""Seq-NMS on a whole split (Detections) and on a video's FrameResults."""

from __future__ import annotations

import numpy as np
import pytest

from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord
from dsfnet.evaluation.detections import Detections
from dsfnet.inference.predictor import FrameResult
from dsfnet.postprocess.seqnms import SeqNMSParams, seq_nms, seq_nms_dataset, seq_nms_frame_results, seq_nms_stream

BOX = [10.0, 10.0, 50.0, 50.0]
DUPLICATE = [18.0, 10.0, 58.0, 50.0]  # IoU 0.67 with BOX


def split(*lengths: int) -> DatasetRecord:
    videos = [VideoRecord(f"v{v}", [FrameRecord(f"v{v}", t, f"/none/v{v}/{t}.JPEG", 100, 100) for t in range(n)])
              for v, n in enumerate(lengths)]
    return DatasetRecord(videos, ("a", "b"))


def test_split_sequences_stop_at_video_boundaries():
    dataset = split(3, 2)  # positions 0-2 are video 0, 3-4 video 1
    rows = [(0, 0.9), (1, 0.9), (2, 0.9), (3, 0.1), (4, 0.1)]  # the same place in every frame
    detections = Detections([p for p, _ in rows], [1] * 5, [s for _, s in rows], [BOX] * 5)
    processed = seq_nms_dataset(dataset, detections)
    assert processed.frame_ids.tolist() == [0, 1, 2, 3, 4]
    # one sequence per video: video 1 would be raised to 0.58 if linked across the boundary
    assert processed.scores.tolist() == pytest.approx([0.9, 0.9, 0.9, 0.1, 0.1])


def test_split_equals_seq_nms_per_video():
    rng = np.random.default_rng(0)
    dataset = split(6, 1, 5)
    n = 60
    frame_ids = rng.integers(0, 12, n)
    centres = rng.uniform(20, 40, (n, 2))
    boxes = np.concatenate([centres - 15, centres + 15], axis=1)
    detections = Detections(frame_ids, rng.integers(1, 3, n), rng.random(n), boxes)
    processed = seq_nms_dataset(dataset, detections, SeqNMSParams(rescore="max"))
    expected = []
    for lo, hi in ((0, 6), (6, 7), (7, 12)):
        rows = np.nonzero((frame_ids >= lo) & (frame_ids < hi))[0]
        keep, scores = seq_nms(frame_ids[rows], boxes[rows], detections.labels[rows], detections.scores[rows],
                               SeqNMSParams(rescore="max"))
        expected += sorted(zip(frame_ids[rows][keep].tolist(), boxes[rows][keep][:, 0].tolist(), scores.tolist()))
    got = sorted(zip(processed.frame_ids.tolist(), processed.boxes[:, 0].tolist(), processed.scores.tolist()))
    assert got == sorted(expected) and 0 < len(got) < n


def test_split_rejects_positions_outside_it():
    with pytest.raises(ValueError, match="outside 0..2"):
        seq_nms_dataset(split(3), Detections([5], [1], [0.5], [BOX]))


def result(index: int, rows: list[tuple]) -> FrameResult:
    """``rows``: (box, label, score)."""
    return FrameResult(index, np.array([r[0] for r in rows], np.float32).reshape(-1, 4),
                       np.array([r[1] for r in rows], np.int64), np.array([r[2] for r in rows], np.float32),
                       ["ab"[r[1] - 1] for r in rows], image=np.zeros((4, 4, 3), np.uint8))


def test_frame_results_rescored_sorted_and_thresholded():
    results = [result(0, [(DUPLICATE, 1, 0.5), (BOX, 1, 0.8)]),
               result(1, [(BOX, 1, 0.2), (BOX, 2, 0.35)]),
               result(2, []),
               result(3, [(BOX, 1, 0.6)])]
    processed = seq_nms_frame_results(results, score_thresh=0.3)
    assert [r.index for r in processed] == [0, 1, 2, 3]
    assert processed[0].scores.tolist() == pytest.approx([0.5])       # (0.8 + 0.2) / 2; the duplicate suppressed
    assert processed[0].class_names == ["a"] and processed[0].scores.dtype == np.float32
    assert processed[1].class_names == ["a", "b"]                     # 0.5 then 0.35, descending
    assert processed[1].scores.tolist() == pytest.approx([0.5, 0.35])
    assert len(processed[2].scores) == 0 and processed[2].boxes.shape == (0, 4)
    assert processed[3].scores.tolist() == pytest.approx([0.6])        # frame 2 is empty: not linked
    assert processed[0].image is results[0].image                      # other fields copied


def test_stream_drops_images_while_buffering_and_attaches_new_ones():
    results = [result(t, [(BOX, 1, 0.5)]) for t in range(3)]
    frames = [np.full((4, 4, 3), t, np.uint8) for t in range(3)]
    streamed = list(seq_nms_stream(iter(results), images=iter(frames)))
    assert [int(r.image[0, 0, 0]) for r in streamed] == [0, 1, 2]
    assert all(r.image is None for r in seq_nms_stream(results))
    with pytest.raises(RuntimeError, match="fewer frames"):
        list(seq_nms_stream(results, images=frames[:2]))
