"""``dsfnet detect``: run a trained DSFNet on a video file, a folder of frames or a live stream.

    dsfnet detect INPUT --weights CKPT --out DIR [--no-video] [--classes car,dog] [--score-thr 0.3]
                  [--device cpu] [--n 21] [--sampling shuffled|stride|causal|shuffled_window] [--memory recent|spread]
                  [--stride 1] [--mode cached|exact] [--seed 0] [--precision fp32|bf16] [--timeout 10]
                  [--input-option KEY=VALUE ...]

Writes ``DIR/detections.jsonl`` (one JSON object per frame, the format ``dsfnet eval --detections`` reads;
boxes in the pixels of the original frames) and ``DIR/annotated.mp4`` (boxes, class names and scores drawn).

- Files and folders: both outputs are written to temporary files and moved into place only when the whole video
  has been processed: a failure leaves no partial output under the final names.
- Live streams (a URL, ``/dev/videoN``, ``-`` for standard input; ``--sampling causal`` only): both are written in
  place as frames are processed (one JSON line flushed per frame; a fragmented MP4, playable while it grows), so
  that a consumer can follow them. Ctrl-C (after the frame in progress), the end of the stream or a stall longer
  than ``--timeout`` closes both cleanly, playable up to the last frame; a stall then ends with an error naming
  the stream.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator, Optional

from tqdm import tqdm

from dsfnet.atomic import atomic_open
from dsfnet.commands.options import add_inference_options, inference_settings
from dsfnet.inference.video_io import (DEFAULT_STALL_TIMEOUT, StreamStalled, VideoWriter, draw_detections,
                                       is_live_input, open_source)

HELP = "detect objects in a video file, a folder of frames or a live stream with a trained model (JSON-lines + " \
       "annotated video)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a video file (any container/codec FFmpeg decodes), a folder of frames "
                                      "(jpg/jpeg/png/bmp, in natural file-name order), or a live stream: a URL "
                                      "FFmpeg opens (rtsp://, rtmp://, http(s)://, tcp://, udp://, ...), a V4L2 "
                                      "camera (/dev/video0) or - for a container stream on standard input "
                                      "(live streams need --sampling causal)")
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
    parser.add_argument("--timeout", type=float, default=DEFAULT_STALL_TIMEOUT, metavar="SECONDS",
                        help="live streams: stop when no frame arrives for this long (outputs are kept)")
    parser.add_argument("--input-option", action="append", default=[], metavar="KEY=VALUE",
                        help="live streams: an FFmpeg option for opening the input, repeatable (e.g. "
                             "rtsp_transport=tcp, or video_size=1280x720 framerate=30 input_format=mjpeg for a "
                             "camera)")
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
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")
    device = resolve_device(args.device)
    live = is_live_input(args.input)
    source = None if live else open_source(args.input, fps=args.fps)  # missing / not a video: error naming it
    model, config = load_model(args.weights, device=device)
    config.test = inference_settings(args, config.test)
    if live and config.test.sampling != "causal":  # said before connecting to the stream
        raise ValueError(f"{args.input} is a live stream: it needs --sampling causal (got {config.test.sampling}, "
                         "which needs the whole video first)")
    predictor = VideoPredictor(model, config, score_thresh=args.score_thr, classes=_classes(args.classes),
                               keep_images=not args.no_video)
    source = source or open_source(args.input, fps=args.fps, timeout=args.timeout,
                                   options=_input_options(args.input_option))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    counts = {"frames": 0, "detections": 0}
    with _stop_on_ctrl_c(source) as stopped:
        try:
            _write_outputs(predictor, source, out, args, counts)
        except (KeyboardInterrupt, StreamStalled):
            if source.live:  # the outputs were closed cleanly and are kept: say what they hold
                _summary(predictor, out, args, counts, time.perf_counter() - started)
            raise
    _summary(predictor, out, args, counts, time.perf_counter() - started)
    if stopped.is_set():
        print(f"dsfnet detect: interrupted: stopped reading {args.input} after {counts['frames']} frames; both "
              "outputs are closed", file=sys.stderr)
        return 130
    return 0


@contextlib.contextmanager
def _stop_on_ctrl_c(source) -> Iterator[threading.Event]:
    """Live streams: the first Ctrl-C stops reading (the frame in progress is finished and written to both
    outputs, which are then closed as at the end of the stream); a second one interrupts at once. The event says
    whether it happened."""
    stopped = threading.Event()
    if not source.live or threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def stop(signum, frame) -> None:
        if stopped.is_set():
            raise KeyboardInterrupt
        stopped.set()
        source.close()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGINT, previous)


def _summary(predictor, out: Path, args: argparse.Namespace, counts: dict, seconds: float) -> None:
    test, frames = predictor.test, counts["frames"]
    memory = f", memory {test.memory}" if test.sampling == "causal" else ""
    print(f"{frames} frames, {counts['detections']} detections (score >= {args.score_thr:g}) in {seconds:.1f} s "
          f"({frames / max(seconds, 1e-9):.2f} frames/s, mode {test.mode}, n {test.num_frames}, "
          f"sampling {test.sampling}{memory})")
    print(f"detections: {out / 'detections.jsonl'}")
    if not args.no_video:
        print(f"annotated video: {out / 'annotated.mp4'}")


def _input_options(pairs: list[str]) -> dict[str, str]:
    """``--input-option KEY=VALUE`` (repeated) as FFmpeg's options dict."""
    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--input-option {pair!r}: expected KEY=VALUE (an FFmpeg option, e.g. rtsp_transport=tcp)")
        options[key.strip()] = value
    return options


def _classes(text: Optional[str]) -> Optional[list[str]]:
    """``--classes car,dog`` as a list (``None``: all classes)."""
    if text is None:
        return None
    classes = [name.strip() for name in text.split(",") if name.strip()]
    if not classes:
        raise ValueError("--classes is empty")
    return classes


def _write_outputs(predictor, source, out: Path, args: argparse.Namespace, counts: dict) -> None:
    """Stream the predictions into ``detections.jsonl`` (and ``annotated.mp4``); ``counts`` follows the frames and
    detections written. Files: both moved into place at the end. Live streams: both written in place, flushed
    per frame, and closed cleanly (kept) whatever ends the stream."""
    live = source.live
    total = None if live else source.count()  # files: one decode pass (warns about truncated streams)
    jsonl = out / "detections.jsonl"
    with (open(jsonl, "w", encoding="utf-8") if live else atomic_open(jsonl, "w")) as handle:
        writer = None if args.no_video else VideoWriter(out / "annotated.mp4", fps=source.fps, live=live)
        try:
            progress = tqdm(predictor.predict(source), total=total, unit="frame", desc=source.name,
                            disable=args.no_progress, dynamic_ncols=True)
            for result in progress:
                handle.write(json.dumps(result.to_json(source.name)) + "\n")
                if live:
                    handle.flush()
                counts["frames"] += 1
                counts["detections"] += len(result.scores)
                if writer is not None:
                    writer.write(draw_detections(result.image, result.boxes, result.labels, result.class_names,
                                                 result.scores))
            progress.close()
            if writer is not None:
                writer.close()  # renames the finished video into place; the JSON-lines file follows
        except BaseException:
            if writer is not None:
                writer.abort()  # files: removed; live: closed cleanly and kept
            raise
