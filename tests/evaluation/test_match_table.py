"""MatchTable: the per-detection weights of an evaluation re-score weighted frames as if they were repeated."""

from __future__ import annotations

import numpy as np
import pytest

from dsfnet.data.records import DatasetRecord, VideoRecord
from dsfnet.evaluation import vid_map
from dsfnet.evaluation.detections import Detections

from test_eval_reference import GROUPS, random_scene


def unique_scores(detections: Detections, seed: int) -> Detections:
    """The same detections with distinct scores (ties would be ordered differently by a repeat)."""
    jitter = np.random.default_rng(seed).permutation(len(detections)) * 1e-6
    return Detections(detections.frame_ids, detections.labels, detections.scores + jitter, detections.boxes)


def repeated(dataset: DatasetRecord, detections: Detections, counts: list[int]) -> tuple[DatasetRecord, Detections]:
    """Video ``v`` of the split ``counts[v]`` times (renamed copies) and its detections with it."""
    starts = np.cumsum([0] + [len(v.frames) for v in dataset.videos])
    videos, parts, offset = [], [], 0
    for v, (record, count) in enumerate(zip(dataset.videos, counts)):
        mine = detections.select(np.flatnonzero((detections.frame_ids >= starts[v]) & (detections.frame_ids < starts[v + 1])))
        for copy in range(count):
            videos.append(VideoRecord(f"{record.name}_{copy}", record.frames))
            parts.append(Detections(mine.frame_ids - starts[v] + offset, mine.labels, mine.scores, mine.boxes))
            offset += len(record.frames)
    return DatasetRecord(videos, dataset.class_names), Detections.concatenate(parts)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("group", [None, *GROUPS])
def test_unweighted_equals_evaluate(seed, group):
    dataset, detections = random_scene(seed)
    result = vid_map.evaluate(dataset, detections)
    expected = result.map if group is None else result.motion_map[group]
    assert vid_map.match_table(dataset, detections, group).mean_ap() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("counts", [[2, 0, 1], [1, 3, 2], [0, 0, 2]])
def test_frame_weights_equal_repeating_the_videos(seed, counts):
    dataset, detections = random_scene(seed)
    detections = unique_scores(detections, seed)
    frame_weights = np.repeat(np.asarray(counts, np.float64), [len(v.frames) for v in dataset.videos])
    got = vid_map.match_table(dataset, detections).mean_ap(frame_weights)
    big, big_detections = repeated(dataset, detections, counts)
    assert got == pytest.approx(vid_map.evaluate(big, big_detections).map, abs=1e-12)
