"""Run a post-processor's array-level function (:data:`dsfnet.postprocess.base.ArrayFunction`) on a whole split
(:func:`postprocess_dataset`), on one video's per-frame results (:func:`postprocess_frame_results`) or on a
stream of them (:func:`postprocess_stream`). ``settings=None`` calls the function with its own defaults."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
from tqdm import tqdm

from dsfnet.data.records import DatasetRecord
from dsfnet.errors import InputChanged, InputError
from dsfnet.evaluation.detections import Detections
from dsfnet.postprocess.base import ArrayFunction


def _call(run: ArrayFunction, frames, boxes, labels, scores, settings: Any) -> tuple[np.ndarray, np.ndarray]:
    if settings is None:
        return run(frames, boxes, labels, scores)
    return run(frames, boxes, labels, scores, settings)


def postprocess_dataset(run: ArrayFunction, dataset: DatasetRecord, detections: Detections, settings: Any = None,
                        *, progress: bool = False, label: str = "post-processing") -> Detections:
    """``run`` on every video of a split.

    Args:
        dataset: the split; a video's frames are consecutive positions of ``dataset.frames()``, and a video's
            neighbouring positions are adjacent frames (sequences never cross from one video into the next).
        detections: the split's detections (``frame_ids`` = positions in ``dataset.frames()``).
        progress, label: a progress bar over the videos, and its name.
    Returns:
        the kept detections with their new scores, ordered by frame.
    """
    bounds = np.cumsum([0] + [len(video.frames) for video in dataset.videos])
    if len(detections) and (detections.frame_ids.min() < 0 or detections.frame_ids.max() >= bounds[-1]):
        raise InputError(f"detections refer to frame positions outside 0..{bounds[-1] - 1} of the split")
    order = np.argsort(detections.frame_ids, kind="stable")
    cuts = np.searchsorted(detections.frame_ids[order], bounds)
    parts = []
    for v in tqdm(range(len(dataset.videos)), unit="video", desc=label, disable=not progress, dynamic_ncols=True):
        rows = order[cuts[v]:cuts[v + 1]]
        if len(rows):
            keep, scores = _call(run, detections.frame_ids[rows], detections.boxes[rows], detections.labels[rows],
                                 detections.scores[rows], settings)
            kept = detections.select(rows[keep])
            parts.append(Detections(kept.frame_ids, kept.labels, scores, kept.boxes))
    return Detections.concatenate(parts)


def postprocess_frame_results(run: ArrayFunction, results: Sequence, settings: Any = None, *,
                              score_thresh: float = 0.0) -> list:
    """``run`` on the per-frame results of one video (``VideoPredictor.predict``'s ``FrameResult`` objects, or
    any dataclass with ``index``, ``boxes [k, 4]``, ``labels [k]``, ``scores [k]`` and ``class_names``).

    Frames whose ``index`` values differ by one are adjacent. Returns new results, one per input in the same
    order, holding the kept detections whose new score is at least ``score_thresh`` (scores descending, dtypes
    kept); the other fields are copied.
    """
    counts = [len(result.scores) for result in results]
    offsets = np.cumsum([0] + counts)
    if offsets[-1] == 0:
        return list(results)
    keep, scores = _call(run, np.repeat([result.index for result in results], counts),
                         np.concatenate([np.asarray(result.boxes).reshape(-1, 4) for result in results]),
                         np.concatenate([np.asarray(result.labels).reshape(-1) for result in results]),
                         np.concatenate([np.asarray(result.scores).reshape(-1) for result in results]), settings)
    bounds = np.searchsorted(keep, offsets)  # keep is ascending: each result's kept rows are one slice
    processed = []
    for i, result in enumerate(results):
        rows, new = keep[bounds[i]:bounds[i + 1]] - offsets[i], scores[bounds[i]:bounds[i + 1]]
        order = np.argsort(-new, kind="stable")
        order = order[new[order] >= score_thresh]
        rows, new = rows[order], new[order]
        processed.append(dataclasses.replace(
            result, boxes=result.boxes[rows], labels=result.labels[rows], scores=new.astype(result.scores.dtype),
            class_names=[result.class_names[j] for j in rows.tolist()]))
    return processed


def postprocess_stream(run: ArrayFunction, results: Iterable, settings: Any = None, *, score_thresh: float = 0.0,
                       images: Optional[Iterable[np.ndarray]] = None) -> Iterator:
    """Buffer one video's results (their images dropped, so memory holds detections only), apply ``run``
    (:func:`postprocess_frame_results`), then yield them in order; with ``images`` (e.g. a second decode of the
    video, RGB ``uint8 [H, W, 3]`` per frame) each result gets its frame back as ``image`` for drawing."""
    buffered = [dataclasses.replace(result, image=None) if hasattr(result, "image") else result
                for result in results]
    processed = postprocess_frame_results(run, buffered, settings, score_thresh=score_thresh)
    if images is None:
        yield from processed
        return
    images = iter(images)
    for result in processed:
        image = next(images, None)
        if image is None:
            raise InputChanged(f"the video gave fewer frames when decoded again for drawing than the "
                               f"{len(processed)} it was detected on")
        yield dataclasses.replace(result, image=image)
