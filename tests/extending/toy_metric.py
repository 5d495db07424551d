"""Recipe 4 (docs/EXTENDING.md): a metric, the share of ground-truth frames with at least one detection."""

import numpy as np

from dsfnet.data.records import DatasetRecord
from dsfnet.evaluation.detections import Detections
from dsfnet.evaluation.metrics import Metric
from dsfnet.registry import METRICS


@METRICS.register("coverage")
class CoverageMetric(Metric):
    help = "share of the frames with ground truth that have at least one detection"

    def evaluate(self, ground_truth: DatasetRecord, detections: Detections) -> dict:
        annotated = np.array([len(frame.boxes) > 0 for frame in ground_truth.frames()])
        detected = np.zeros(len(annotated), bool)
        detected[detections.frame_ids] = True
        return {"coverage": float((annotated & detected).sum() / annotated.sum()) if annotated.any() else None}

    def summary(self, result: dict) -> dict:
        return result
