"""Inference over a split on all ranks: each rank detects its shard of the videos (balanced by frame count).

- :func:`predict_split`: in memory; every rank gets the split's merged detections (periodic validation during
  training, :func:`dsfnet.inference.evaluate.predict_dataset`).
- :func:`predict_split_resumable`: into a run folder, one atomic file per finished video
  (:class:`~dsfnet.inference.video_store.VideoResultStore`) and a manifest (:mod:`dsfnet.inference.manifest`);
  ``resume`` skips the videos already done; rank 0 merges all videos' files in split order.

Every video is detected by a fresh pass of the same :class:`VideoPredictor` (its support frames depend on the
video and the seed only), so the merged detections do not depend on the number of ranks or on interruptions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from dsfnet.data.records import DatasetRecord, VideoRecord
from dsfnet.engine.distributed import DistributedContext, all_gather_object
from dsfnet.evaluation.detections import Detections
from dsfnet.inference.manifest import file_sha256, flatten, start_run, write_manifest
from dsfnet.inference.rank_progress import RankProgress, peak_memory_per_rank
from dsfnet.inference.sharding import balanced_assignment, decided_by_main
from dsfnet.inference.video_io import FrameListSource
from dsfnet.inference.video_store import VideoResultStore, merge_in_split_order

SINGLE_PROCESS = DistributedContext()


def predict_video(predictor, video: VideoRecord, on_frame: Callable[[], None] = lambda: None) -> Detections:
    """Detections of one video; ``frame_ids`` are frame indices within the video (0 .. len(video) - 1)."""
    parts = []
    if not video.frames:
        return Detections()
    source = FrameListSource([frame.image_path for frame in video.frames], name=video.name, path=video.name)
    for result in predictor.predict(source):
        if len(result.scores):
            parts.append(Detections.for_frame(result.index, result.boxes, result.labels, result.scores))
        on_frame()
    return Detections.concatenate(parts)


def my_videos(dataset: DatasetRecord, pending: list[int], context: DistributedContext) -> list[int]:
    """This rank's share of the ``pending`` video indices (balanced by frame count over all ranks)."""
    sizes = [len(dataset.videos[index].frames) for index in pending]
    return [pending[i] for i in balanced_assignment(sizes, context.world_size)[context.rank]]


def _run_shard(predictor, dataset: DatasetRecord, indices: list[int], progress: RankProgress,
               on_video: Callable[[int, Detections], None]) -> None:
    try:
        for index in indices:
            on_video(index, predict_video(predictor, dataset.videos[index], progress.step))
            progress.item_done()
    finally:
        progress.close()


def predict_split(predictor, dataset: DatasetRecord, context: DistributedContext = SINGLE_PROCESS,
                  progress: bool = False) -> Detections:
    """The split's detections (``frame_ids`` = positions in ``dataset.frames()``), computed by all ranks of
    ``context`` (each its shard) and returned on every rank."""
    indices = my_videos(dataset, list(range(len(dataset.videos))), context)
    total = len(dataset.frames())
    own = sum(len(dataset.videos[index].frames) for index in indices)
    mine: dict[int, Detections] = {}
    _run_shard(predictor, dataset, indices, RankProgress(context, own, total, enabled=progress),
               lambda index, detections: mine.__setitem__(index, detections))
    per_video: dict[int, Detections] = {}
    for part in all_gather_object(mine, context):
        per_video.update(part)
    return merge_in_split_order(dataset, per_video)


def predict_split_resumable(predictor, dataset: DatasetRecord, out_dir: Path, identity: Mapping[str, Any],
                            resume: bool, context: DistributedContext = SINGLE_PROCESS,
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
        store.clear(finished=not start_run(out_dir, identity, resume))
        done = store.finished()
        return [index for index in range(len(dataset.videos)) if index not in done]

    pending = decided_by_main(prepare, context)
    indices = my_videos(dataset, pending, context)
    run_total = sum(frames[index] for index in pending)
    before = set(range(len(dataset.videos))) - set(pending)
    bar = RankProgress(context, sum(frames[index] for index in indices), run_total, enabled=progress,
                       finished=lambda: sum(frames[index] for index in store.finished() - before))
    started = time.perf_counter()
    _run_shard(predictor, dataset, indices, bar,
               lambda index, detections: store.save(index, dataset.videos[index].name, detections))
    memory = peak_memory_per_rank(context)  # waits for every rank
    seconds = time.perf_counter() - started  # until the last rank is done
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
