"""``dsfnet demo``: a bundled DSFNet vs the bundled baseline of the same backbone on freshly generated held-out
synthetic videos.

Needs nothing but the installed package: the videos are generated (DESIGN §7), the checkpoints ship in
``dsfnet/assets`` (each holds all its weights, so the light pair does not need the ``light`` extra either).
Writes per-model detections and reports, a side-by-side annotated video (baseline | DSFNet) and
``demo_report.json`` / ``demo_report.txt``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dsfnet.atomic import atomic_write_text, discard
from dsfnet.bundled import BUNDLED, DEFAULT_BACKBONE
from dsfnet.data.images import load_frame
from dsfnet.data.synth import HELD_OUT_SEED, generate_synthetic_vid
from dsfnet.data.vid import read_vid_split
from dsfnet.engine.checkpoint import load_model
from dsfnet.evaluation.detections import write_jsonl
from dsfnet.evaluation.report import write_report
from dsfnet.evaluation.vid_map import evaluate
from dsfnet.inference.evaluate import predict_dataset
from dsfnet.inference.video_io import VideoWriter, draw_detections

DRAW_SCORE = 0.5


@dataclass
class ModelRun:
    name: str
    result: object  # EvalResult
    detections: object  # Detections
    ms_per_frame: float


def _run_model(name: str, weights: Path, dataset, out_dir: Path, device: str, num_frames: Optional[int]) -> ModelRun:
    model, config = load_model(weights, device)
    if config.model.variant != name:
        raise ValueError(f"{weights}: expected a '{name}' checkpoint, got one of variant '{config.model.variant}'")
    if num_frames is not None:
        config.test.num_frames = num_frames
    frames = len(dataset.frames())
    start = time.perf_counter()
    detections = predict_dataset(model, dataset, config, device, progress=True)
    ms_per_frame = 1000 * (time.perf_counter() - start) / frames
    result = evaluate(dataset, detections)
    write_jsonl(out_dir / name / "detections.jsonl", dataset, detections)
    write_report(result, out_dir / name, title=f"{name} on held-out synthetic VID")
    return ModelRun(name, result, detections, ms_per_frame)


def _side_by_side_video(dataset, runs: list[ModelRun], path: Path) -> Path:
    """One MP4 of all videos: each frame shows the runs' detections (score >= DRAW_SCORE) side by side."""
    names = dataset.class_names
    with VideoWriter(path, fps=10) as writer:
        for position, frame in enumerate(dataset.frames()):
            image = np.asarray(load_frame(frame.image_path))
            panels = []
            for run in runs:
                det = run.detections
                keep = (det.frame_ids == position) & (det.scores >= DRAW_SCORE)
                labels = det.labels[keep]
                panels.append(draw_detections(image, det.boxes[keep], labels, [names[l - 1] for l in labels],
                                              det.scores[keep]))
            writer.write(np.concatenate(panels, axis=1))
    return path


def _summary(runs: list[ModelRun]) -> tuple[dict, str]:
    rows = {run.name: {"map": run.result.map, **{f"map_{g}": run.result.motion_map.get(g) for g in
                                                  ("slow", "medium", "fast")}, "ms_per_frame": run.ms_per_frame}
            for run in runs}
    pct = lambda value: "  n/a" if value is None else f"{100 * value:5.1f}"
    lines = ["model      mAP   slow  medium  fast   ms/frame",
             *(f"{name:<9} {pct(r['map'])} {pct(r['map_slow'])} {pct(r['map_medium'])}  {pct(r['map_fast'])}"
               f"   {r['ms_per_frame']:7.1f}" for name, r in rows.items())]
    return rows, "\n".join(lines)


def run_demo(out_dir: str | Path, device: str = "cpu", num_videos: int = 30, num_frames: int = 40,
             seed: int = HELD_OUT_SEED, clip_frames: Optional[int] = None, write_video: bool = True,
             weights: Optional[dict[str, Path]] = None, backbone: str = DEFAULT_BACKBONE) -> dict:
    """Generate held-out videos, run the ``backbone`` pair of bundled models (or the checkpoints in ``weights``,
    by variant), evaluate, write outputs; returns the summary rows."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a folder")
    if backbone not in BUNDLED:
        raise ValueError(f"unknown bundled backbone '{backbone}'; choose one of {sorted(BUNDLED)}")
    weights = {**BUNDLED[backbone], **(weights or {})}
    for name, path in weights.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{name} checkpoint not found: {path} (reinstall the package or pass --weights)")
    # the held-out videos are regenerated whole: no frames of an earlier demo with other settings stay mixed in
    data_root = generate_synthetic_vid(out_dir / "data", 0, seed, num_val_videos=num_videos, num_frames=num_frames,
                                       num_det_images=0, overwrite=True)
    dataset = read_vid_split(data_root, "VID_val_videos", cache_dir=out_dir / "data" / ".cache")
    runs = [_run_model(name, Path(path), dataset, out_dir, device, clip_frames) for name, path in weights.items()]
    rows, table = _summary(runs)
    if write_video:
        video = _side_by_side_video(dataset, runs, out_dir / "side_by_side.mp4")
        table += f"\n\nannotated video (left: baseline, right: DSFNet): {video}"
    elif discard(out_dir / "side_by_side.mp4"):  # an earlier demo's video would not show these results
        table += f"\n\nremoved the earlier demo's {out_dir / 'side_by_side.mp4'}"
    report = {"videos": num_videos, "frames_per_video": num_frames, "seed": seed, "device": device, "models": rows}
    atomic_write_text(out_dir / "demo_report.txt", table + "\n")
    atomic_write_text(out_dir / "demo_report.json", json.dumps(report, indent=2) + "\n")
    print(table)
    return rows
