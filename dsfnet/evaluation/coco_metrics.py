"""COCO-protocol box AP (pycocotools' ``COCOeval``, the reference implementation) beside the VID devkit's mAP, and
the two files another tool needs to evaluate our output: ``results.json`` and the ground truth as CocoVID JSON.

Conventions of the exported files:

- Image ids are the frames' 1-based positions in ``dataset.frames()`` (the devkit's global frame index, and what
  :func:`dsfnet.data.cocovid.write_cocovid` numbers images with); category ids are our labels ``1..C``.
- Boxes: ours are ``x1, y1, x2, y2`` corners (VID XML's, in original-image pixels). Both the ground truth and the
  detections are exported as ``bbox = [x1, y1, x2 - x1, y2 - y1]`` (no +1), the width mmtracking's VID-to-CocoVID
  converter writes, so the COCO numbers match what mmtracking / TransVOD compute from CocoVID annotations. The
  devkit instead measures ``w = x2 - x1 + 1`` (see ``vid_map``), one of the reasons the two protocols differ.
- ``COCOeval`` keeps at most 100 detections per image and class (its default ``maxDets``), averages precision
  over 101 recall points and, for AP, over IoU 0.50:0.05:0.95; small / medium / large are ground-truth areas
  below 32², up to 96², above (in ``w * h`` of the exported boxes).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dsfnet.atomic import atomic_write_text
from dsfnet.data.cocovid import write_cocovid
from dsfnet.data.records import DatasetRecord
from dsfnet.evaluation.detections import Detections

#: ``COCOeval.stats[:6]``, in its order.
COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
RESULTS_FILE = "results.json"
GROUND_TRUTH_FILE = "ground_truth_cocovid.json"


def coco_results(detections: Detections) -> list[dict]:
    """The COCO results list: ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` per detection."""
    boxes = detections.boxes
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist()
    return [{"image_id": frame + 1, "category_id": label, "bbox": box, "score": score}
            for frame, label, box, score in zip(detections.frame_ids.tolist(), detections.labels.tolist(), xywh,
                                                detections.scores.tolist())]


def write_coco_files(dataset: DatasetRecord, detections: Detections, out_dir: str | os.PathLike
                     ) -> tuple[Path, Path]:
    """Write ``results.json`` and ``ground_truth_cocovid.json`` into ``out_dir`` (atomically); returns their
    paths (ground truth first)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gt_path, results_path = out_dir / GROUND_TRUTH_FILE, out_dir / RESULTS_FILE
    write_cocovid(dataset, gt_path)
    atomic_write_text(results_path, json.dumps(coco_results(detections)) + "\n")
    return gt_path, results_path


def coco_evaluate(ground_truth: dict, results: list[dict]) -> dict[str, Optional[float]]:
    """``COCOeval`` (bbox) of ``results`` against a COCO / CocoVID ground-truth document.

    Returns:
        ``COCO_METRICS`` name → value in [0, 1], or None where COCO has nothing to average (no ground truth of
        that size).
    """
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        if results:
            detections = gt.loadRes([dict(r) for r in results])  # loadRes adds fields to the dicts it gets
        else:  # loadRes cannot read an empty list; an empty result set gives AP 0 wherever there is ground truth
            detections = COCO()
            detections.dataset = {"images": ground_truth["images"], "categories": ground_truth["categories"],
                                  "annotations": []}
            detections.createIndex()
        evaluator = COCOeval(gt, detections, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: (float(value) if value >= 0 else None) for name, value in zip(COCO_METRICS, evaluator.stats)}


def coco_report(dataset: DatasetRecord, detections: Detections, out_dir: str | os.PathLike
                ) -> tuple[dict[str, Optional[float]], dict]:
    """Write the COCO files into ``out_dir`` and evaluate the detections against the written ground truth.

    Returns:
        the metrics (:func:`coco_evaluate`) and ``{"coco_files": {"results": path, "ground_truth": path}}`` for
        ``report.json``.
    """
    gt_path, results_path = write_coco_files(dataset, detections, out_dir)
    metrics = coco_evaluate(json.loads(gt_path.read_bytes()), coco_results(detections))
    return metrics, {"coco_files": {"results": str(results_path), "ground_truth": str(gt_path)}}
