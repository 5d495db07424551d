"""Recipe 3 (docs/EXTENDING.md): a post-processor that keeps the ``k`` best detections of every frame."""

import argparse
from dataclasses import dataclass

import numpy as np

from dsfnet.errors import InputError
from dsfnet.postprocess.base import PostProcessor
from dsfnet.registry import POSTPROCESSORS


@dataclass(frozen=True)
class TopKSettings:
    k: int = 1

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InputError(f"--topk-k must be >= 1, got {self.k}")


def top_k(frames, boxes, labels, scores, settings: TopKSettings = TopKSettings()):
    """Keep the ``settings.k`` best-scoring detections of each frame; scores unchanged."""
    frames, scores = np.asarray(frames), np.asarray(scores, np.float64)
    order = np.lexsort((-scores, frames))  # by frame, best first
    first = np.searchsorted(frames[order], frames[order])  # where each detection's frame starts
    keep = np.sort(order[np.arange(len(order)) - first < settings.k])
    return keep.astype(np.int64), scores[keep]


def _add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--topk-k", type=int, default=1, metavar="K", help="topk: detections kept per frame")


POSTPROCESSORS.register("topk", PostProcessor(
    run=top_k, help="keep the K best detections of every frame", label="top-k", add_arguments=_add_arguments,
    settings=lambda args: TopKSettings(args.topk_k)))
