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
    parser.add_argument("--n", type=int, default=None,
                        help="frames per clip: test frame + n-1 support frames; None = the checkpoint config's "
                             "test.num_frames")
    parser.add_argument("--sampling", choices=("shuffled", "stride"), default=None,
                        help="support frames: shuffled global set (paper default) or fixed stride around the "
                             "test frame; None = the checkpoint config's test.sampling")
    parser.add_argument("--stride", type=int, default=None,
                        help="stride between support frames with --sampling stride; None = test.stride")
    parser.add_argument("--mode", choices=("cached", "exact"), default=None,
                        help="cached: support features computed once per video; exact: the full network on "
                             "every test frame's clip; None = test.mode")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the shuffled support order; None = test.seed")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                        help="bf16: run the model under bfloat16 autocast (fast on GPUs and on CPUs with AMX or "
                             "AVX512-BF16, slower on other CPUs); None = test.precision (fp32 by default)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of the annotated video; None = the input's (25 for frame folders)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _device(name: str):
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"invalid --device {name!r} ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return device


def _warn_to_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"dsfnet detect: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _warn_to_stderr
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dsfnet.engine.checkpoint import load_model
    from dsfnet.atomic import atomic_open, discard
    from dsfnet.inference.predictor import VideoPredictor
    from dsfnet.inference.video_io import VideoWriter, draw_detections, open_source

    if not 0 <= args.score_thr <= 1:  # also refuses nan
        raise ValueError(f"--score-thr must be in [0, 1], got {args.score_thr}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise ValueError(f"--fps must be in (0, 1000], got {args.fps}")
    device = _device(args.device)
    source = open_source(args.input, fps=args.fps)  # missing / not a video: error naming the input
    model, config = load_model(args.weights, device=device)
    classes = None
    if args.classes is not None:
        classes = [name.strip() for name in args.classes.split(",") if name.strip()]
        if not classes:
            raise ValueError("--classes is empty")
    predictor = VideoPredictor(model, config, device=device, score_thresh=args.score_thr, classes=classes,
                               num_frames=args.n, sampling=args.sampling, stride=args.stride, mode=args.mode,
                               seed=args.seed, precision=args.precision, keep_images=not args.no_video)
    num_frames = source.count()  # one decode pass; warns about truncated streams; zero frames -> ValueError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    jsonl_path = out / "detections.jsonl"
    video_path = out / "annotated.mp4"
    started = time.perf_counter()
    total = 0
    with atomic_open(jsonl_path, "w") as handle:
        writer = None if args.no_video else VideoWriter(video_path, fps=source.fps)
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
    if args.no_video and discard(video_path):  # an earlier run's video would not show these detections
        print(f"removed {video_path} of an earlier run (--no-video)")
    seconds = time.perf_counter() - started
    print(f"{num_frames} frames, {total} detections (score >= {args.score_thr:g}) in {seconds:.1f} s "
          f"({num_frames / max(seconds, 1e-9):.2f} frames/s, mode {predictor.mode}, n {predictor.n}, "
          f"sampling {predictor.sampling})")
    print(f"detections: {jsonl_path}")
    if not args.no_video:
        print(f"annotated video: {video_path}")
    return 0
