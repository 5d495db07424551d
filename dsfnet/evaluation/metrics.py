"""Metrics, chosen by ``dsfnet eval --metrics``: the built-in ``vid`` (the ImageNet VID devkit's mAP and its
motion groups, :mod:`dsfnet.evaluation.vid_map`) and ``coco`` (pycocotools' COCO protocol,
:mod:`dsfnet.evaluation.coco_metrics`).

A metric is a :class:`Metric` subclass registered in :data:`dsfnet.registry.METRICS` and built with no
arguments. ``dsfnet eval`` always runs ``vid`` (its result is the report's base: the per-class table and the
plots) and adds every other metric named in ``--metrics`` as a section of ``report.json`` (its :meth:`summary`),
a table in ``report.txt`` (its :meth:`table`) and the files of its :meth:`export`. Periodic validation during
training logs ``vid``'s summary. ``docs/EXTENDING.md`` shows how to add one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from dsfnet.data.cocovid import cocovid_document
from dsfnet.data.records import DatasetRecord
from dsfnet.evaluation.coco_metrics import coco_evaluate, coco_results, write_coco_files
from dsfnet.evaluation.detections import Detections
from dsfnet.evaluation.report import format_coco_table, format_table, percent
from dsfnet.evaluation.vid_map import EvalResult, evaluate
from dsfnet.registry import METRICS


class Metric:
    """The interface of a metric. ``help`` describes it in ``dsfnet eval --help``."""

    help = ""

    def evaluate(self, ground_truth: DatasetRecord, detections: Detections) -> Any:
        """Score ``detections`` (``frame_ids`` = positions in ``ground_truth.frames()``, labels ``1..C``)."""
        raise NotImplementedError

    def summary(self, result: Any) -> dict[str, Optional[float]]:
        """The result's numbers by name (``None`` where undefined): ``report.json``'s section of the metric."""
        raise NotImplementedError

    def table(self, result: Any) -> str:
        """The result as text lines (ending in a newline) for ``report.txt`` and the terminal (default: one
        ``name: value in %`` line per summary number)."""
        return "".join(f"{name}: {percent(value)}\n" for name, value in self.summary(result).items())

    def export(self, ground_truth: DatasetRecord, detections: Detections, out_dir: str | os.PathLike) -> dict:
        """Write files other tools read into ``out_dir``; returns the fields naming them for ``report.json``."""
        return {}


@METRICS.register("vid")
class VidMetric(Metric):
    """The ImageNet VID devkit's mAP, per class and per motion group (``motion=False``: per class only)."""

    help = "the ImageNet VID devkit's mAP and the motion groups (always)"

    def __init__(self, motion: bool = True):
        self.motion = motion

    def evaluate(self, ground_truth: DatasetRecord, detections: Detections) -> EvalResult:
        return evaluate(ground_truth, detections, motion=self.motion)

    def summary(self, result: EvalResult) -> dict[str, Optional[float]]:
        return {"mAP": result.map, **{f"mAP_{group}": value for group, value in result.motion_map.items()}}

    def table(self, result: EvalResult) -> str:
        return format_table(result)


@METRICS.register("coco")
class CocoMetric(Metric):
    """COCO-protocol box AP through pycocotools (AP, AP50, AP75, AP small / medium / large)."""

    help = ("also the COCO protocol through pycocotools (AP, AP50, AP75, AP small / medium / large) in report.json / "
            "report.txt, and results.json + ground_truth_cocovid.json for other tools")

    def evaluate(self, ground_truth: DatasetRecord, detections: Detections) -> dict[str, Optional[float]]:
        return coco_evaluate(cocovid_document(ground_truth, os.getcwd()), coco_results(detections))

    def summary(self, result: dict[str, Optional[float]]) -> dict[str, Optional[float]]:
        return result

    def table(self, result: dict[str, Optional[float]]) -> str:
        return format_coco_table(result)

    def export(self, ground_truth: DatasetRecord, detections: Detections, out_dir: str | os.PathLike) -> dict:
        gt_path, results_path = write_coco_files(ground_truth, detections, Path(out_dir))
        return {"coco_files": {"results": str(results_path), "ground_truth": str(gt_path)}}
