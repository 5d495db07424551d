"""Inference over a whole split, and ``dsfnet eval CONFIG --weights CKPT`` (the model path of ``dsfnet eval``).

- :func:`predict_dataset` runs a :class:`VideoPredictor` over every video of a :class:`DatasetRecord` (each video's
  frames are image files) and returns the split's :class:`Detections`.
- :func:`evaluate_model` = :func:`predict_dataset` + the VID protocol (``dsfnet.evaluation.vid_map.evaluate``);
  the trainer calls it for its periodic validation.
- :func:`run_model_eval` is the command: it loads the checkpoint, reads the split named by the config (or
  ``--split`` / ``--data``), writes ``detections.jsonl`` and the report files into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import Union

import numpy as np
import torch

from dsfnet.config import Config, load_config
from dsfnet.data.records import DatasetRecord

logger = logging.getLogger(__name__)


def _subset(dataset: DatasetRecord, max_videos: int) -> DatasetRecord:
    """The first ``max_videos`` videos (all when 0); frame positions of the prefix are unchanged."""
    if max_videos <= 0 or max_videos >= len(dataset.videos):
        return dataset
    return DatasetRecord(videos=list(dataset.videos[:max_videos]), class_names=tuple(dataset.class_names))


def predict_dataset(model: torch.nn.Module, dataset: DatasetRecord, config: Config,
                    device: Union[str, torch.device] = "cpu", max_videos: int = 0, progress: bool = True,
                    **predictor_options):
    """Detections of every frame of ``dataset`` (the first ``max_videos`` videos when > 0).

    Args:
        model: the detector; put in eval mode (the caller restores training mode if needed).
        dataset: the split; its videos' frames are read from ``FrameRecord.image_path``.
        config: gives ``test`` (n, sampling, stride, mode, seed) and ``data`` (resize, class names).
        predictor_options: forwarded to :class:`VideoPredictor` (e.g. ``mode="exact"``).

    Returns:
        :class:`~dsfnet.evaluation.detections.Detections` with ``frame_ids`` = 0-based positions in
        ``dataset.frames()``; all detections the model keeps (no extra score threshold), boxes in original pixels.
    """
    from tqdm import tqdm

    from dsfnet.evaluation.detections import Detections
    from dsfnet.inference.predictor import VideoPredictor
    from dsfnet.inference.video_io import FrameListSource

    options = {"score_thresh": 0.0}
    options.update(predictor_options)
    predictor = VideoPredictor(model, config, device=device, keep_images=False, **options)
    videos = _subset(dataset, max_videos).videos
    total = sum(len(video.frames) for video in videos)
    parts = []
    position = 0
    bar = tqdm(total=total, unit="frame", desc="inference", disable=not progress, dynamic_ncols=True)
    try:
        for video in videos:
            if not video.frames:
                continue
            source = FrameListSource([frame.image_path for frame in video.frames], name=video.name,
                                     path=video.name)
            for result in predictor.predict(source):
                if len(result.scores):
                    parts.append(Detections.for_frame(position + result.index, result.boxes.astype(np.float64),
                                                      result.labels, result.scores.astype(np.float64)))
                bar.update(1)
            position += len(video.frames)
    finally:
        bar.close()
    return Detections.concatenate(parts)


def evaluate_model(model: torch.nn.Module, dataset: DatasetRecord, config: Config,
                   device: Union[str, torch.device] = "cpu", max_videos: int = 0, motion: bool = True,
                   progress: bool = False):
    """Run the model over ``dataset`` (first ``max_videos`` videos when > 0) and return its ``EvalResult``.

    The model's training/eval mode is restored afterwards.
    """
    from dsfnet.evaluation.vid_map import evaluate

    was_training = model.training
    try:
        subset = _subset(dataset, max_videos)
        detections = predict_dataset(model, subset, config, device, progress=progress)
        return evaluate(subset, detections, motion=motion)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------------------------------- command
def _read_split(config: Config, split: str) -> DatasetRecord:
    """``val`` / ``train`` = the config's validation split / first training split; any other name is an
    ``ImageSets`` file name of a VID root."""
    data = config.data
    if data.format == "cocovid":
        from dsfnet.data.cocovid import read_cocovid

        if split not in ("val", "train"):
            raise ValueError(f"--split {split!r}: with data.format cocovid the split is 'val' (data.val_json) or "
                             "'train' (data.train_json)")
        key = "data.val_json" if split == "val" else "data.train_json"
        json_path = data.val_json if split == "val" else data.train_json
        if json_path is None:
            raise ValueError(f"{key} must name a CocoVID annotation file to evaluate split {split!r}")
        if not Path(json_path).is_file():
            raise FileNotFoundError(f"annotation file not found: {json_path} ({key})")
        return read_cocovid(json_path, image_root=data.root)
    if not Path(data.root).is_dir():
        raise FileNotFoundError(f"dataset root not found: {data.root} (data.root; override with --data ROOT)")
    from dsfnet.data.vid import read_vid_split

    name = {"val": data.val_split, "train": data.train_splits[0] if data.train_splits else "train"}.get(split, split)
    return read_vid_split(data.root, name, skip_bad=data.skip_bad_samples)


def run_model_eval(args: argparse.Namespace) -> int:
    """``dsfnet eval CONFIG --weights CKPT [--split val] [--data ROOT] [--mode] [--n] [--sampling] [--stride]
    [--seed] [--out DIR] [--no-motion]``: inference over the split, then the VID report."""
    from dsfnet.commands.eval import evaluate_and_report
    from dsfnet.engine.checkpoint import architecture_differences, load_model
    from dsfnet.evaluation.detections import write_jsonl

    config = load_config(args.config)
    if getattr(args, "data", None):
        config.data.root = args.data
    for option, field in (("mode", "mode"), ("n", "num_frames"), ("sampling", "sampling"), ("stride", "stride"),
                          ("seed", "seed"), ("precision", "precision"), ("memory", "memory")):
        value = getattr(args, option, None)
        if value is not None:
            setattr(config.test, field, value)
    if config.test.num_frames < 1:
        raise ValueError(f"--n must be >= 1, got {config.test.num_frames}")
    if config.test.stride < 1:
        raise ValueError(f"--stride must be >= 1, got {config.test.stride}")
    device = torch.device(getattr(args, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu"))

    model, checkpoint_config = load_model(args.weights, device=device)
    differences = architecture_differences(checkpoint_config.to_dict()["model"], config.to_dict()["model"])
    if differences:
        raise ValueError(f"checkpoint {args.weights} was trained with another architecture than {args.config} "
                         f"(checkpoint != config): {'; '.join(differences)}")
    config = dataclasses.replace(config, model=checkpoint_config.model)

    split = args.split or "val"
    dataset = _read_split(config, split)
    if len(dataset.class_names) != config.model.num_classes:
        raise ValueError(f"the split has {len(dataset.class_names)} classes but the model predicts "
                         f"{config.model.num_classes}")
    out_dir = Path(args.out) if args.out else Path(args.weights).parent / f"eval_{Path(str(split)).name}"
    started = time.perf_counter()
    detections = predict_dataset(model, dataset, config, device, progress=True)
    seconds = time.perf_counter() - started
    num_frames = sum(len(video.frames) for video in dataset.videos)
    logger.info("inference: %d frames in %.1f s (%.2f frames/s)", num_frames, seconds,
                num_frames / max(seconds, 1e-9))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "detections.jsonl", dataset, detections)
    test = config.test
    extra = {"weights": str(args.weights), "config": str(args.config), "split": split,
             "mode": test.mode, "n": test.num_frames, "sampling": test.sampling, "memory": test.memory,
             "stride": test.stride,
             "seed": test.seed, "precision": test.precision, "variant": config.model.variant,
             "inference_seconds": round(seconds, 3),
             "detections_file": str(out_dir / "detections.jsonl")}
    title = args.title or f"{Path(args.config).stem} ({config.model.variant}, {test.mode}, n={test.num_frames}, " \
                          f"{test.sampling})"
    evaluate_and_report(dataset, detections, out_dir, motion=not args.no_motion, title=title, extra=extra)
    return 0
