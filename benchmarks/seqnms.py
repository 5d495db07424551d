"""Seq-NMS gain and cost, and devkit mAP beside COCO AP50, on the demo's held-out synthetic set.

For each bundled tiny-ResNet checkpoint (``dsfnet/assets/synth_*.pt``): generate the demo's held-out videos (30 x 40 frames, seed 2020,
as ``dsfnet demo``), run the model over them (``cached``, the checkpoint's n), evaluate the detections with the
VID devkit protocol (mAP all / slow / medium / fast) and the COCO protocol (pycocotools), then the same after
Seq-NMS (average and max rescoring). Times are per frame, measured in the same run, Seq-NMS right after the
model, as CPU time of the process with the model on ``--threads`` threads (default 1, like single-threaded numpy
Seq-NMS), so that their ratio holds on a shared machine; wall times are recorded too. The crowded case of issue 26
(5,000 boxes per frame over 200 frames, 30 classes: ``--crowded``) runs in a process of its own, measuring its wall
time and peak memory (``ru_maxrss``). Usage::

    python benchmarks/seqnms.py [--out runs/seqnms_bench] [--videos 30] [--frames 40] [--repeats 3] [--threads 1]
    python benchmarks/seqnms.py --crowded-only [--crowded 5000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.data.vid import read_vid_split
from dsfnet.demo import BUNDLED, HELD_OUT_SEED
from dsfnet.engine.checkpoint import load_model
from dsfnet.evaluation.coco_metrics import coco_report
from dsfnet.evaluation.vid_map import evaluate
from dsfnet.inference.evaluate import predict_dataset
from dsfnet.postprocess.seqnms import SeqNMSParams, seq_nms, seq_nms_dataset


def _metrics(dataset, detections, folder: Path) -> dict:
    result = evaluate(dataset, detections)
    coco, _ = coco_report(dataset, detections, folder)
    return {"map": result.map, **{f"map_{g}": result.motion_map[g] for g in ("slow", "medium", "fast")},
            "coco_AP50": coco["AP50"], "coco_AP": coco["AP"], "detections": len(detections)}


def _timed(function):
    """``function()``'s result and its (CPU, wall) seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = function()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def run_model(name: str, dataset, work: Path, repeats: int) -> dict:
    model, config = load_model(BUNDLED["tiny"][name], "cpu")
    frames = len(dataset.frames())
    detections, cpu, wall = _timed(lambda: predict_dataset(model, dataset, config, "cpu", progress=False))
    run = {"model_ms_per_frame": 1000 * cpu / frames, "model_wall_ms_per_frame": 1000 * wall / frames,
           "rows": {"none": _metrics(dataset, detections, work / name / "none")}}
    for rescore in ("avg", "max"):
        params = SeqNMSParams(rescore=rescore)
        timings = [_timed(lambda: seq_nms_dataset(dataset, detections, params)) for _ in range(repeats)]
        run["rows"][f"seqnms_{rescore}"] = {
            **_metrics(dataset, timings[0][0], work / name / rescore),
            "seqnms_ms_per_frame": 1000 * float(np.median([t[1] for t in timings])) / frames,
            "seqnms_wall_ms_per_frame": 1000 * float(np.median([t[2] for t in timings])) / frames}
    return run


def dense_video(rng, frames: int = 300, classes: int = 30, objects: int = 30, clutter: int = 250):
    """Flat ``(frames [N], boxes [N, 4], labels [N], scores [N])``: moving objects with 1-3 jittered boxes each
    per frame and uniformly placed clutter boxes of random classes and low scores."""
    origin, velocity = rng.uniform(0, 600, (objects, 2)), rng.uniform(-5, 5, (objects, 2))
    size, label = rng.uniform(30, 200, (objects, 2)), rng.integers(1, classes + 1, objects)
    rows = []
    for t in range(frames):
        copies = rng.integers(1, 4, objects)
        corner = np.repeat(origin + velocity * t, copies, 0) + rng.normal(0, 5, (copies.sum(), 2))
        boxes = np.concatenate([corner, corner + np.repeat(size, copies, 0)], 1)
        rows.append((np.repeat(label, copies), rng.uniform(0.3, 1.0, copies.sum()), boxes))
        corner = rng.uniform(0, 600, (clutter, 2))
        rows.append((rng.integers(1, classes + 1, clutter), rng.uniform(0, 0.3, clutter),
                     np.concatenate([corner, corner + rng.uniform(10, 150, (clutter, 2))], 1)))
    frame_of = np.concatenate([np.full(len(r[0]), i // 2) for i, r in enumerate(rows)])
    return (frame_of, np.concatenate([r[2] for r in rows]), np.concatenate([r[0] for r in rows]),
            np.concatenate([r[1] for r in rows]))


def time_dense() -> dict:
    frames, boxes, labels, scores = dense_video(np.random.default_rng(0))
    _, cpu, _ = _timed(lambda: seq_nms(frames, boxes, labels, scores))
    num_frames = int(frames.max()) + 1
    return {"boxes_per_frame": len(frames) / num_frames, "seqnms_ms_per_frame": 1000 * cpu / num_frames}


def _crowded_child(boxes_per_frame: int, frames: int, classes: int, queue) -> None:
    detections = dense_video(np.random.default_rng(0), frames=frames, classes=classes, objects=30,
                             clutter=boxes_per_frame - 60)  # 30 objects with 1-3 boxes each: ~60 per frame
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    keep, _ = seq_nms(*detections)
    queue.put({"boxes": len(detections[0]), "boxes_per_frame": len(detections[0]) / frames, "frames": frames,
               "classes": classes, "kept": len(keep), "seconds": time.perf_counter() - start,
               "cpu_seconds": time.process_time() - cpu,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "rss_before_mb": before / 1024})


def time_crowded(boxes_per_frame: int = 5000, frames: int = 200, classes: int = 30) -> dict:
    """Seq-NMS on one crowded video (``dense_video``: moving objects and clutter, ``boxes_per_frame`` boxes per
    frame) in a fresh process: wall and CPU seconds, and peak resident memory of that process (MB; ``rss_before_mb``:
    with the data built, before Seq-NMS)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_crowded_child, args=(boxes_per_frame, frames, classes, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def print_tables(results: dict) -> None:
    print("CPU ms per frame (wall in report JSON)")
    print("| model | post | mAP all | slow | medium | fast | COCO AP50 | COCO AP | Seq-NMS ms/frame | model ms/frame |"
          " Seq-NMS / model |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, run in results.items():
        for post, row in run["rows"].items():
            cost = row.get("seqnms_ms_per_frame")
            timing = (f"{cost:.2f} | {run['model_ms_per_frame']:.1f} | {100 * cost / run['model_ms_per_frame']:.1f} %"
                      if cost is not None else f"- | {run['model_ms_per_frame']:.1f} | -")
            print(f"| {name} | {post} | {_pct(row['map'])} | {_pct(row['map_slow'])} | {_pct(row['map_medium'])} | "
                  f"{_pct(row['map_fast'])} | {_pct(row['coco_AP50'])} | {_pct(row['coco_AP'])} | {timing} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for the data, COCO files and seqnms_bench.json "
                                                    "(default: a temporary folder)")
    parser.add_argument("--videos", type=int, default=30, help="held-out videos (default 30, as the demo)")
    parser.add_argument("--frames", type=int, default=40, help="frames per video (default 40, as the demo)")
    parser.add_argument("--repeats", type=int, default=3, help="Seq-NMS runs timed; the median counts (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the model (default 1)")
    parser.add_argument("--crowded", type=int, default=5000, metavar="BOXES",
                        help="boxes per frame of the crowded case (200 frames, 30 classes; default 5000)")
    parser.add_argument("--crowded-only", action="store_true", help="only the crowded case (no model, no data)")
    args = parser.parse_args()
    crowded = time_crowded(args.crowded)
    print(f"crowded video: {crowded['boxes_per_frame']:.0f} boxes per frame x {crowded['frames']} frames, "
          f"{crowded['classes']} classes: Seq-NMS {crowded['seconds']:.1f} s ({crowded['cpu_seconds']:.1f} s CPU), peak "
          f"memory {crowded['peak_rss_mb']:.0f} MB ({crowded['rss_before_mb']:.0f} MB before Seq-NMS)")
    if args.crowded_only:
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dsfnet_seqnms_bench_"))
    root = generate_synthetic_vid(out / "data", 0, HELD_OUT_SEED, num_val_videos=args.videos,
                                  num_frames=args.frames, num_det_images=0)
    dataset = read_vid_split(root, "VID_val_videos", cache_dir=out / "data" / ".cache")
    results = {name: run_model(name, dataset, out, args.repeats) for name in BUNDLED["tiny"]}
    dense = time_dense()
    (out / "seqnms_bench.json").write_text(json.dumps({**results, "dense": dense, "crowded": crowded}, indent=2)
                                           + "\n")
    print_tables(results)
    print(f"\ndense video: {dense['boxes_per_frame']:.0f} boxes per frame, Seq-NMS {dense['seqnms_ms_per_frame']:.2f} "
          "CPU ms per frame")
    print(f"\nresults: {out / 'seqnms_bench.json'}")


if __name__ == "__main__":
    main()
