"""COCO-protocol metrics: our AP against pycocotools run directly on the exported files, and hand-computed AP."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dsfnet.evaluation.coco_metrics import COCO_METRICS, coco_report, coco_results
from dsfnet.evaluation.vid_map import evaluate
from evalhelpers import dataset, dets, video

BIG = [0, 0, 99, 99]
OTHER = [200, 200, 299, 299]


def pycocotools_on_files(gt_path, results_path) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(str(results_path)), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def random_split(rng):
    """Two videos, three classes, objects of all sizes; detections: jittered true boxes and clutter."""
    videos, rows, position = [], [], 0
    for v in range(2):
        frames = []
        for t in range(5):
            objects = []
            for track in range(3):
                x, y = rng.uniform(0, 600, 2)
                w, h = rng.choice([12, 50, 150]) * rng.uniform(0.8, 1.2, 2)  # small / medium / large
                objects.append((track + 1, track, [x, y, x + w, y + h]))
                for _ in range(rng.integers(0, 3)):
                    jitter = rng.normal(0, 0.1 * min(w, h), 4)
                    rows.append((position, track + 1, rng.random(), list(np.add([x, y, x + w, y + h], jitter))))
            for _ in range(3):
                x, y = rng.uniform(0, 600, 2)
                rows.append((position, int(rng.integers(1, 4)), rng.random() * 0.6, [x, y, x + 40, y + 30]))
            frames.append(objects)
            position += 1
        videos.append(video(f"v{v}", frames))
    return dataset(*videos), dets(rows)


def test_coco_ap50_equals_pycocotools_on_the_exported_files(tmp_path):
    ds, detections = random_split(np.random.default_rng(3))
    metrics, files = coco_report(ds, detections, tmp_path)
    stats = pycocotools_on_files(files["coco_files"]["ground_truth"], files["coco_files"]["results"])
    assert metrics["AP50"] == pytest.approx(stats[1], abs=1e-12)
    for name, value in zip(COCO_METRICS, stats):
        assert metrics[name] == pytest.approx(value, abs=1e-12)
    assert 0.2 < metrics["AP50"] < 0.95 and metrics["APs"] is not None


def test_results_file_is_coco_results_format(tmp_path):
    ds = dataset(video("v", [[(1, 1, BIG)], [(2, 2, OTHER)]]))
    _, files = coco_report(ds, dets([(1, 2, 0.5, [200.5, 201, 300, 310])]), tmp_path)
    results = json.loads(open(files["coco_files"]["results"]).read())
    # image id = 1-based position of the frame; bbox = x, y, x2 - x1, y2 - y1
    assert results == [{"image_id": 2, "category_id": 2, "bbox": [200.5, 201.0, 99.5, 109.0], "score": 0.5}]
    gt = json.loads(open(files["coco_files"]["ground_truth"]).read())
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in gt["annotations"]] == \
        [(1, 1, [0, 0, 99, 99]), (2, 2, [200, 200, 99, 99])]


def test_101_point_interpolation_differs_from_the_devkit_all_point_ap(tmp_path):
    """Hand-computed: class a has 2 GT; scores rank TP, FP, TP. Precision envelope: 1 up to recall 0.5, 2/3 up to
    recall 1. Devkit (all points): 0.5 * 1 + 0.5 * 2/3 = 0.8333; COCO samples recall 0, 0.01, ..., 1: 51 points
    at precision 1 and 50 at 2/3, (51 + 50 * 2/3) / 101 = 0.8350."""
    ds = dataset(video("v", [[(1, 1, BIG)], [(1, 1, OTHER)]]))
    detections = dets([(0, 1, 0.9, BIG), (1, 1, 0.8, [500, 500, 560, 560]), (1, 1, 0.7, OTHER)])
    metrics, _ = coco_report(ds, detections, tmp_path)
    assert metrics["AP50"] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-12)
    assert evaluate(ds, detections).map == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)
    assert metrics["APs"] is None and metrics["APm"] is None  # no ground truth of those sizes


def test_no_detections_give_zero_where_there_is_ground_truth(tmp_path):
    ds = dataset(video("v", [[(1, 1, BIG)]]))
    metrics, files = coco_report(ds, dets([]), tmp_path)
    assert metrics["AP"] == 0.0 and metrics["AP50"] == 0.0 and metrics["APs"] is None
    assert json.loads(open(files["coco_files"]["results"]).read()) == []
    assert coco_results(dets([])) == []
