"""Inference over a whole split: the detections of every video, and their VID mAP.

- :func:`predict_dataset` runs a :class:`VideoPredictor` over every video of a :class:`DatasetRecord` (each
  video's frames are image files, :func:`predict_video` per video) and returns the split's :class:`Detections`.
  Given the ranks of a process group, each rank detects its share of the videos (balanced by frame count) and
  all get the whole result; one process is the one-rank case.
- :func:`evaluate_model` = :func:`predict_dataset` + the VID protocol (``dsfnet.evaluation.vid_map.evaluate``).
- :func:`periodic_validation` is the callable ``dsfnet train`` hands the trainer for ``train.eval_interval``.

``dsfnet eval`` writes each video's detections to a file as it goes instead (resumable):
:mod:`dsfnet.inference.sharded_eval`.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch

from dsfnet.config import Config
from dsfnet.data.records import DatasetRecord, VideoRecord
from dsfnet.data.split import read_split
from dsfnet.engine.distributed import DistributedContext, all_gather_object
from dsfnet.evaluation.detections import Detections
from dsfnet.evaluation.metrics import VidMetric
from dsfnet.evaluation.vid_map import EvalResult
from dsfnet.inference.predictor import VideoPredictor
from dsfnet.inference.rank_progress import RankProgress
from dsfnet.inference.sharding import my_share
from dsfnet.inference.video_io import FrameListSource

SINGLE_PROCESS = DistributedContext()


def _subset(dataset: DatasetRecord, max_videos: int) -> DatasetRecord:
    """The first ``max_videos`` videos (all when 0); frame positions of the prefix are unchanged."""
    if max_videos <= 0 or max_videos >= len(dataset.videos):
        return dataset
    return DatasetRecord(videos=list(dataset.videos[:max_videos]), class_names=tuple(dataset.class_names))


def predict_dataset(model: torch.nn.Module, dataset: DatasetRecord, config: Config,
                    device: Optional[Union[str, torch.device]] = None, *, max_videos: int = 0, progress: bool = True,
                    context: DistributedContext = SINGLE_PROCESS, **predictor_options) -> Detections:
    """Detections of every frame of ``dataset`` (the first ``max_videos`` videos when > 0).

    Args:
        model: the detector (its training/eval mode is left as it was).
        device: where the model is (``None``: wherever its parameters are); see :class:`VideoPredictor`.
        dataset: the split; its videos' frames are read from ``FrameRecord.image_path``.
        config: gives ``test`` (n, sampling, stride, mode, seed) and ``data`` (resize, class names).
        context: the ranks that share the work (every rank of it must call this; all get the same result).
        predictor_options: forwarded to :class:`VideoPredictor` (e.g. ``mode="exact"``).

    Returns:
        :class:`~dsfnet.evaluation.detections.Detections` with ``frame_ids`` = 0-based positions in
        ``dataset.frames()``; all detections the model keeps (no extra score threshold), boxes in original pixels.
    """
    predictor = VideoPredictor(model, config, device=device, keep_images=False,
                               **{"score_thresh": 0.0, **predictor_options})
    videos = _subset(dataset, max_videos).videos
    starts = np.cumsum([0] + [len(video.frames) for video in videos]).tolist()
    mine = my_share(range(len(videos)), [len(video.frames) for video in videos], context)
    bar = RankProgress(context, sum(len(videos[index].frames) for index in mine), starts[-1], enabled=progress)
    parts = {}
    try:
        for index in mine:
            parts[index] = predict_video(predictor, videos[index], starts[index], on_frame=bar.step)
            bar.item_done()
    finally:
        bar.close()
    for gathered in all_gather_object(parts, context):
        parts.update(gathered)
    return Detections.concatenate([parts[index] for index in range(len(videos))])


def predict_video(predictor: VideoPredictor, video: VideoRecord, first_position: int = 0,
                  on_frame: Callable[[], object] = lambda: None) -> Detections:
    """Detections of one video of a split, its frames at split positions ``first_position...`` (what a runner
    over a split's videos, sharded or not, calls per video); ``on_frame()`` after each frame."""
    if not video.frames:
        return Detections()
    source = FrameListSource([frame.image_path for frame in video.frames], name=video.name, path=video.name)
    parts = []
    for result in predictor.predict(source):
        if len(result.scores):
            parts.append(Detections.for_frame(first_position + result.index, result.boxes.astype(np.float64),
                                              result.labels, result.scores.astype(np.float64)))
        on_frame()
    return Detections.concatenate(parts)


def evaluate_model(model: torch.nn.Module, dataset: DatasetRecord, config: Config,
                   device: Optional[Union[str, torch.device]] = None, *, max_videos: int = 0, motion: bool = True,
                   progress: bool = False, context: DistributedContext = SINGLE_PROCESS) -> EvalResult:
    """Run the model over ``dataset`` (first ``max_videos`` videos when > 0) and return its ``EvalResult``
    (every rank of ``context`` detects its share of the videos; all return the same result)."""
    subset = _subset(dataset, max_videos)
    detections = predict_dataset(model, subset, config, device, progress=progress, context=context)
    return VidMetric(motion=motion).evaluate(subset, detections)


def periodic_validation(config: Config) -> Callable[[torch.nn.Module, DistributedContext], dict[str, float]]:
    """``(model, context) -> {"mAP": ..., "mAP_slow": ..., ...}`` on ``config``'s validation split (its first
    ``train.eval_max_videos`` videos when > 0), called on every rank: each detects its share of the videos. The
    split is read here, so that a bad path fails before training starts."""
    split = read_split(config.data, "val")

    def validate(model: torch.nn.Module, context: DistributedContext) -> dict[str, float]:
        result = evaluate_model(model, split, config, max_videos=config.train.eval_max_videos, context=context)
        return VidMetric().summary(result)

    return validate
