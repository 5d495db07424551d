"""Options shared by ``dsfnet detect`` and ``dsfnet eval``: ``--post`` (Seq-NMS) and, for ``eval``, ``--metrics``.

The commands call :func:`add_postprocess_arguments` / :func:`add_metrics_argument` when building their parser and
:func:`postprocess_params` / :func:`postprocess_split` to apply what was asked.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Optional

from dsfnet.atomic import discard
from dsfnet.data.records import DatasetRecord
from dsfnet.evaluation.coco_metrics import GROUND_TRUTH_FILE, RESULTS_FILE
from dsfnet.evaluation.detections import Detections, write_jsonl
from dsfnet.postprocess.seqnms import RESCORE_METHODS, SeqNMSParams, seq_nms_dataset

POST_METHODS = ("none", "seqnms")
METRICS = ("vid", "coco")
SEQNMS_FILE = "detections_seqnms.jsonl"


def _iou(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"an IoU in [0, 1], got {text}")
    return value


def add_postprocess_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SeqNMSParams()
    group = parser.add_argument_group(
        "post-processing", "offline only: Seq-NMS needs the whole video's detections before any frame is final, "
        "so it runs after the last frame of each video has been detected")
    group.add_argument("--post", choices=POST_METHODS, default="none",
                       help="seqnms: Seq-NMS (Han et al. 2016): link boxes of one class across adjacent frames, "
                            "rescore the best-scoring sequences and suppress boxes overlapping them (default none)")
    group.add_argument("--seqnms-link-iou", type=_iou, default=defaults.link_iou, metavar="IOU",
                       help="Seq-NMS links boxes of adjacent frames whose IoU is above this")
    group.add_argument("--seqnms-nms-iou", type=_iou, default=defaults.nms_iou, metavar="IOU",
                       help="Seq-NMS removes boxes whose IoU with a selected sequence's box in their frame is at "
                            "least this")
    group.add_argument("--seqnms-rescore", choices=RESCORE_METHODS, default=defaults.rescore,
                       help="new score of a sequence's boxes: their average or their maximum score")


def postprocess_params(args: argparse.Namespace) -> Optional[SeqNMSParams]:
    """The Seq-NMS settings of ``--post seqnms``, or None for ``--post none``; bad values raise ``ValueError``."""
    if args.post == "none":
        return None
    return SeqNMSParams(args.seqnms_link_iou, args.seqnms_nms_iou, args.seqnms_rescore)


def postprocess_split(args: argparse.Namespace, dataset: DatasetRecord, detections: Detections,
                      out_dir: Path) -> tuple[Detections, dict]:
    """Apply ``--post`` to a split's detections; with Seq-NMS also write them to ``out_dir/detections_seqnms.jsonl``.

    Returns the detections to evaluate and the fields to add to ``report.json`` (``post``, and ``seqnms`` with the
    settings and the post-processed detection file).
    """
    params = postprocess_params(args)
    if params is None:
        return detections, {"post": "none"}
    processed = seq_nms_dataset(dataset, detections, params, progress=True)
    path = Path(out_dir) / SEQNMS_FILE
    write_jsonl(path, dataset, processed)
    return processed, {"post": "seqnms", "seqnms": {**dataclasses.asdict(params), "detections_file": str(path),
                                                     "detections_before": len(detections),
                                                     "detections_after": len(processed)}}


def remove_outputs_not_asked(args: argparse.Namespace, out_dir: Path) -> None:
    """Remove an earlier run's optional outputs that this run's ``--post`` / ``--metrics`` do not write, so that
    no stale file stays beside the new report (printing each one removed)."""
    stale = ([SEQNMS_FILE] if args.post == "none" else []) + \
        ([GROUND_TRUTH_FILE, RESULTS_FILE] if "coco" not in args.metrics else [])
    for name in stale:
        if discard(Path(out_dir) / name):
            print(f"removed {Path(out_dir) / name} of an earlier run (not asked for now)")


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"vid,coco"`` → ``("vid", "coco")``; the devkit's ``vid`` must be among them (its report is the base)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or "vid" not in names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(METRICS)} that includes "
                                         f"vid, got {text!r}")
    return names


def add_metrics_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", type=parse_metrics, default=("vid",), metavar="LIST",
                        help="vid: the ImageNet VID devkit's mAP and the motion groups (always); vid,coco: also the "
                             "COCO protocol through pycocotools (AP, AP50, AP75, AP small / medium / large) in "
                             "report.json / report.txt, and results.json + ground_truth_cocovid.json for other "
                             "tools (default vid)")
