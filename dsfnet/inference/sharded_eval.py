"""Resumable inference over a split on all ranks (``dsfnet eval CONFIG --weights CKPT``, under torchrun or not).

:func:`predict_split_resumable`: each rank detects its share of the videos not yet done (balanced by frame
count) into a run folder, one atomic file per finished video (:mod:`dsfnet.inference.video_store`), under a
manifest (:mod:`dsfnet.inference.manifest`) that ``resume`` checks; rank 0 merges all videos' files in split
order. :func:`eval_identity` is what the manifest holds.

Every video is detected by a fresh pass of the same :class:`VideoPredictor` (its support frames depend on the
video and the seed only), so the merged detections do not depend on the number of ranks or on interruptions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Optional

from dsfnet.data.records import DatasetRecord
from dsfnet.engine.distributed import DistributedContext
from dsfnet.evaluation.detections import Detections
from dsfnet.inference.evaluate import SINGLE_PROCESS, predict_video
from dsfnet.inference.manifest import file_sha256, start_run, write_manifest
from dsfnet.jsonable import flatten
from dsfnet.inference.predictor import VideoPredictor
from dsfnet.inference.rank_progress import RankProgress
from dsfnet.inference.sharding import decided_by_main, my_share, run_my_share
from dsfnet.inference.video_store import VideoResultStore, merge_in_split_order


def predict_split_resumable(predictor: VideoPredictor, dataset: DatasetRecord, out_dir: Path, *,
                            identity: Mapping[str, Any], resume: bool, context: DistributedContext = SINGLE_PROCESS,
                            progress: bool = True) -> Optional[Detections]:
    """Detect every video of ``dataset`` not yet done in ``out_dir`` on all ranks; rank 0 returns the merged
    detections of the whole split (other ranks ``None``).

    ``identity``: what the outputs depend on (checkpoint hash, options, split), checked against the run in
    ``out_dir`` by ``resume`` (see :func:`dsfnet.inference.manifest.start_run`).
    """
    store = VideoResultStore(out_dir)
    frames = [len(video.frames) for video in dataset.videos]

    def prepare() -> list[int]:
        out_dir.mkdir(parents=True, exist_ok=True)
        continuing = start_run(out_dir, identity, resume)
        store.clear(finished=not continuing)
        if continuing:  # checked now, not when merging after every other video's inference
            store.drop_unreadable(dataset)
        done = store.finished()
        return [index for index in range(len(dataset.videos)) if index not in done]

    pending = decided_by_main(prepare, context)
    mine = my_share(pending, [frames[index] for index in pending], context)
    run_total = sum(frames[index] for index in pending)
    before = set(range(len(dataset.videos))) - set(pending)
    bar = RankProgress(context, sum(frames[index] for index in mine), run_total, enabled=progress,
                       finished=lambda: sum(frames[index] for index in store.finished() - before))

    def work(index: int) -> None:  # frame ids within the video: the file does not depend on the other videos
        video = dataset.videos[index]
        store.save(index, video.name, predict_video(predictor, video, on_frame=bar.step))

    seconds, memory = run_my_share(mine, work, bar, context)
    if not context.is_main:
        return None
    merged = merge_in_split_order(dataset, store.load_all(dataset))
    write_manifest(out_dir, identity, finished=True)
    skipped = f", {len(before)} videos done before the resume" if before else ""
    print(f"inference: {run_total} frames of {len(pending)} videos in {seconds:.1f} s on {context.world_size} "
          f"rank(s): {run_total / max(seconds, 1e-9):.2f} frames/s overall{skipped}; {memory}")
    return merged


def eval_identity(weights: str | Path, config, split: str, dataset: DatasetRecord) -> dict[str, Any]:
    """What an evaluation's detections depend on: the checkpoint's bytes, the inference options ``test.*``, the
    resize and the split's videos (names and frame counts). Not the report options (``--no-motion``, title)."""
    videos = json.dumps([[video.name, len(video.frames)] for video in dataset.videos])
    return {"checkpoint.sha256": file_sha256(weights), **flatten({"test": dataclasses.asdict(config.test)}),
            "data.min_size": config.data.min_size, "data.max_size": config.data.max_size, "split": str(split),
            "split.videos": len(dataset.videos), "split.videos_sha256": hashlib.sha256(videos.encode()).hexdigest()}
