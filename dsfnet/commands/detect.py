"""``dsfnet detect``: run a trained DSFNet on a video file or a folder of frames.

    dsfnet detect INPUT --weights CKPT --out DIR [--no-video] [--classes car,dog] [--score-thr 0.3]
                  [--device cpu] [--n 21] [--sampling shuffled|stride] [--stride 1] [--mode cached|exact] [--seed 0]
                  [--precision fp32|bf16]

Writes ``DIR/detections.jsonl`` (one JSON object per frame, the format ``dsfnet eval --detections`` reads;
boxes in the pixels of the original frames) and ``DIR/annotated.mp4`` (boxes, class names and scores drawn).
Both are written to temporary files and moved into place only when the whole video has been processed: a
failure leaves no partial output under the final names.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from dsfnet.atomic import atomic_open
from dsfnet.commands.options import add_inference_options, inference_settings
from dsfnet.inference.video_io import VideoWriter, draw_detections, open_source

HELP = "detect objects in a video file or a folder of frames with a trained model (JSON-lines + annotated video)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a video file (any container/codec FFmpeg decodes) or a folder of frames "
                                      "(jpg/jpeg/png/bmp, in natural file-name order)")
    parser.add_argument("--weights", required=True, metavar="CKPT",
                        help="model checkpoint (training checkpoint or exported weights; the model is built from "
                             "the config stored in it)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder for detections.jsonl and annotated.mp4 (created if missing)")
    parser.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names to keep; None = all classes of the model")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="keep (write and draw) detections scoring at least this")
    parser.add_argument("--device", default="cpu", help="torch device to run on, e.g. cpu, cuda, cuda:1")
    add_inference_options(parser)
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of the annotated video; None = the input's (25 for frame folders)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _warn_to_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"dsfnet detect: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _warn_to_stderr
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # torch-based modules load here, not when ``dsfnet --help`` builds the parser (seconds of start-up)
    from dsfnet.device import resolve_device
    from dsfnet.engine.checkpoint import load_model
    from dsfnet.inference.predictor import VideoPredictor

    if args.score_thr < 0:
        raise ValueError(f"--score-thr must be >= 0, got {args.score_thr}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise ValueError(f"--fps must be in (0, 1000], got {args.fps}")
    device = resolve_device(args.device)
    source = open_source(args.input, fps=args.fps)  # missing / not a video: error naming the input
    model, config = load_model(args.weights, device=device)
    config.test = inference_settings(args, config.test)
    predictor = VideoPredictor(model, config, score_thresh=args.score_thr, classes=_classes(args.classes),
                               keep_images=not args.no_video)
    num_frames = source.count()  # one decode pass; warns about truncated streams; zero frames -> ValueError
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    total = _write_outputs(predictor, source, num_frames, out, args)
    seconds = time.perf_counter() - started
    test = predictor.test
    print(f"{num_frames} frames, {total} detections (score >= {args.score_thr:g}) in {seconds:.1f} s "
          f"({num_frames / max(seconds, 1e-9):.2f} frames/s, mode {test.mode}, n {test.num_frames}, "
          f"sampling {test.sampling})")
    print(f"detections: {out / 'detections.jsonl'}")
    if not args.no_video:
        print(f"annotated video: {out / 'annotated.mp4'}")
    return 0


def _classes(text: Optional[str]) -> Optional[list[str]]:
    """``--classes car,dog`` as a list (``None``: all classes)."""
    if text is None:
        return None
    classes = [name.strip() for name in text.split(",") if name.strip()]
    if not classes:
        raise ValueError("--classes is empty")
    return classes


def _write_outputs(predictor, source, num_frames: int, out: Path, args: argparse.Namespace) -> int:
    """Stream the predictions into ``detections.jsonl`` (and ``annotated.mp4``), each moved into place only when
    the whole video is done; returns the number of detections written."""
    total = 0
    with atomic_open(out / "detections.jsonl", "w") as handle:
        writer = None if args.no_video else VideoWriter(out / "annotated.mp4", fps=source.fps)
        try:
            progress = tqdm(predictor.predict(source), total=num_frames, unit="frame", desc=source.name,
                            disable=args.no_progress, dynamic_ncols=True)
            for result in progress:
                handle.write(json.dumps(result.to_json(source.name)) + "\n")
                total += len(result.scores)
                if writer is not None:
                    writer.write(draw_detections(result.image, result.boxes, result.labels, result.class_names,
                                                 result.scores))
            progress.close()
            if writer is not None:
                writer.close()  # renames the finished video into place; the JSON-lines file follows
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    return total
