"""``dsfnet detect``: run a trained DSFNet on a video file, a folder of frames or a live stream, or on a batch.

    dsfnet detect INPUT --weights CKPT --out DIR [--no-video] [--classes car,dog] [--score-thr 0.3]
                  [--device cpu] [--n 21] [--sampling shuffled|stride|causal|shuffled_window] [--memory recent|spread]
                  [--stride 1] [--mode cached|exact] [--seed 0] [--precision fp32|bf16]
                  [--post seqnms [--seqnms-link-iou 0.5] [--seqnms-nms-iou 0.3]]
    dsfnet detect URL | /dev/videoN | - --weights CKPT --out DIR --sampling causal [--timeout 10]
                  [--input-option KEY=VALUE ...]
    dsfnet detect INPUT [INPUT ...] | FOLDER_OF_VIDEOS | LIST.txt --weights CKPT --out DIR [--skip-bad] [--resume]
    torchrun --nproc_per_node 8 -m dsfnet detect FOLDER_OF_VIDEOS --weights CKPT --out DIR --device cuda

Writes ``DIR/detections.jsonl`` (one JSON object per frame, the format ``dsfnet eval --detections`` reads;
boxes in the pixels of the original frames) and ``DIR/annotated.mp4`` (boxes, class names and scores drawn).
Both are written to temporary files and moved into place only when the whole video has been processed: a
failure leaves no partial output under the final names. A batch (``dsfnet.inference.batch``) writes them into
``DIR/<input name>/`` and ``DIR/summary.json``.

Live streams (a URL, ``/dev/videoN``, ``-`` for standard input; ``--sampling causal`` only) are written in place
as frames are processed instead (one JSON line flushed per frame; a fragmented MP4, playable while it grows), so
that a consumer can follow them. Ctrl-C or SIGTERM (after the frame in progress), the end of the stream or a stall
longer than ``--timeout`` closes both cleanly, playable up to the last frame; a stall then ends with an error
naming the stream. A failed write (a full disk) cuts both back to the frames both hold whole.

SIGTERM otherwise stops as Ctrl-C does (``dsfnet.engine.signals.sigterm_as_ctrl_c``): files and batches remove
the partial outputs of the input in progress. Temporary files that a killed run left in ``--out`` are removed
when the next run starts there.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Iterator, Optional

from tqdm import tqdm

from dsfnet.atomic import append_whole, atomic_open, discard, drop_last_lines, remove_stale_temporaries
from dsfnet.commands.messages import warnings_as_lines
from dsfnet.commands.options import add_inference_options, inference_settings
from dsfnet.commands.postprocess_options import add_postprocess_arguments, chosen_post, warn_unused_post_options
from dsfnet.engine.run_dir import locked_run_dir
from dsfnet.engine.signals import Terminated, handling, sigterm_as_ctrl_c
from dsfnet.errors import InputError
from dsfnet.inference.video_io import (DEFAULT_STALL_TIMEOUT, StreamStalled, VideoWriter, draw_detections,
                                       is_live_input, open_source)
from dsfnet.postprocess.apply import postprocess_stream

HELP = "detect objects in a video file, a folder of frames or a live stream (camera, RTSP, pipe) with a trained " \
       "model (JSON-lines + annotated video)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="+",
                        help="a video file (any container/codec FFmpeg decodes), a folder of frames "
                             "(jpg/jpeg/png/bmp, in natural file-name order), or a live stream: a URL FFmpeg opens "
                             "(rtsp://, rtmp://, http(s)://, tcp://, udp://, ...), a V4L2 camera (/dev/video0) or - "
                             "for a container stream on standard input (live streams need --sampling causal); for a "
                             "batch: several of these, a folder of video files (and of frame folders), or a "
                             ".txt/.lst list file with one path or URL per line")
    parser.add_argument("--weights", required=True, metavar="CKPT",
                        help="model checkpoint (training checkpoint or exported weights; the model is built from "
                             "the config stored in it)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder for detections.jsonl and annotated.mp4 (created if missing); a batch "
                             "writes one sub-folder per input and summary.json")
    parser.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names to keep; None = all classes of the model")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="keep (write and draw) detections scoring at least this (with --post: the "
                             "post-processed score)")
    parser.add_argument("--device", default="cpu",
                        help="torch device to run on, e.g. cpu, cuda, cuda:1 (cuda: cuda:LOCAL_RANK under torchrun)")
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
    parser.add_argument("--skip-bad", action="store_true",
                        help="batch: record an unreadable input as failed in summary.json and go on with the others "
                             "(default: stop with an error; the finished inputs keep their outputs)")
    parser.add_argument("--resume", action="store_true",
                        help="batch: continue an interrupted batch in --out, skipping the inputs already done "
                             "(refused unless the checkpoint and options are the same)")
    add_postprocess_arguments(parser)  # with --post, --score-thr applies to the post-processed scores


def run(args: argparse.Namespace) -> int:
    with warnings_as_lines("detect"), sigterm_as_ctrl_c():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # torch-based modules load here, not when ``dsfnet --help`` builds the parser (seconds of start-up)
    from dsfnet.inference.batch import expand_inputs

    if not 0 <= args.score_thr <= 1:  # also refuses nan
        raise InputError(f"--score-thr must be in [0, 1], got {args.score_thr}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise InputError(f"--fps must be in (0, 1000], got {args.fps}")
    if not args.timeout > 0:
        raise InputError(f"--timeout must be > 0 seconds, got {args.timeout}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    inputs, batch = expand_inputs(args.input)
    _warn_unused_input_options(args.input_option, [item.source for item in inputs])
    warn_unused_post_options(args)
    if batch:
        return _run_batch(args, inputs)
    if args.resume or args.skip_bad:
        raise InputError("--resume and --skip-bad apply to a batch (several inputs, a list file or a folder of "
                         "videos)")
    with locked_run_dir(out, command="detect"):  # one run per folder
        return _run_one(args, inputs[0].source, out)


def _run_one(args: argparse.Namespace, spec: str, out: Path) -> int:
    """Detect one input (a file, a folder of frames or a live stream) into ``out``; the exit status."""
    from dsfnet.device import resolve_device

    live = is_live_input(spec)
    if not live:
        open_source(spec, fps=args.fps)  # missing / not a video: error naming the input, before the model
    predictor = _predictor(args, resolve_device(args.device))
    # a live stream is opened (connected to) only once the options are known to suit it
    source = _open(args, spec, predictor) if live else spec
    started = time.perf_counter()
    counts = {"frames": 0, "detections": 0}
    with _stop_on_signal(source) as received:
        try:
            _detect_into(predictor, args, source, out, progress=not args.no_progress, counts=counts)
        except (KeyboardInterrupt, StreamStalled):
            if live:  # the outputs were closed cleanly and are kept: say what they hold
                _summary(predictor, out, args, counts, time.perf_counter() - started)
            raise
    _summary(predictor, out, args, counts, time.perf_counter() - started)
    if received:
        reason = "interrupted" if received[0] == signal.SIGINT else str(Terminated())
        print(f"dsfnet detect: {reason}: stopped reading {spec} after {counts['frames']} frames; both outputs "
              "are closed", file=sys.stderr)
        return 128 + received[0]
    return 0


def _summary(predictor, out: Path, args: argparse.Namespace, counts: dict, seconds: float) -> None:
    test, frames = predictor.test, counts["frames"]
    memory = f", memory {test.memory}" if test.sampling == "causal" else ""
    print(f"{frames} frames, {counts['detections']} detections (score >= {args.score_thr:g}) in {seconds:.1f} s "
          f"({frames / max(seconds, 1e-9):.2f} frames/s, mode {test.mode}, n {test.num_frames}, "
          f"sampling {test.sampling}{memory})")
    print(f"detections: {out / 'detections.jsonl'}")
    if not args.no_video:
        print(f"annotated video: {out / 'annotated.mp4'}")


def _open(args: argparse.Namespace, spec, predictor):
    """The source of one input; a live stream only with causal sampling and no whole-video post-processing."""
    if is_live_input(spec):
        if predictor.test.sampling != "causal":
            raise InputError(f"{spec} is a live stream: it needs --sampling causal (got {predictor.test.sampling}, "
                             "which needs the whole video first)")
        if chosen_post(args) is not None:
            raise InputError(f"{spec} is a live stream: --post needs the whole video")
    return open_source(spec, fps=args.fps, timeout=args.timeout, options=_input_options(args.input_option))


@contextlib.contextmanager
def _stop_on_signal(source) -> Iterator[list[int]]:
    """Live streams: the first Ctrl-C or SIGTERM stops reading (the frame in progress is finished and written to
    both outputs, which are then closed as at the end of the stream); a second one interrupts at once. Yields the
    list of the signals that stopped it (empty: none)."""
    received: list[int] = []
    if not getattr(source, "live", False):
        yield received
        return

    def stop(signum, frame) -> None:
        if received:
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        received.append(signum)
        source.close()

    with handling((signal.SIGINT, signal.SIGTERM), stop):
        yield received


def _predictor(args: argparse.Namespace, device):
    """The checkpoint's model on ``device`` in a predictor with the command line's options."""
    from dsfnet.engine.checkpoint import load_model
    from dsfnet.inference.predictor import VideoPredictor

    model, config = load_model(args.weights, device=device)
    config.test = inference_settings(args, config.test)
    # Seq-NMS sees every detection the model keeps (a low score may be raised) and draws from a second decode
    post = chosen_post(args)
    return VideoPredictor(model, config, score_thresh=args.score_thr if post is None else 0.0,
                          classes=_classes(args.classes), keep_images=not args.no_video and post is None)


def _run_batch(args: argparse.Namespace, inputs) -> int:
    """Several inputs: one sub-folder each and ``summary.json``; shared among the ranks of ``torchrun``."""
    from dsfnet.engine.distributed import process_group
    from dsfnet.inference.batch import run_batch
    from dsfnet.inference.manifest import file_sha256
    from dsfnet.jsonable import flatten
    from dsfnet.inference.sharding import INFERENCE_TIMEOUT

    # one run per folder (rank 0 holds the lock): a second --resume would detect the same inputs again
    with process_group(args.device, timeout=INFERENCE_TIMEOUT) as context, \
            locked_run_dir(Path(args.out), enabled=context.is_main, command="detect"):
        predictor = _predictor(args, context.device)
        post = chosen_post(args)  # every option that changes the outputs: a resume cannot mix them
        identity = {"checkpoint.sha256": file_sha256(args.weights), **flatten({"test": dataclasses.asdict(predictor.test)}),
                    "score_thr": args.score_thr, "classes": args.classes, "video": not args.no_video,
                    "fps": args.fps, "post": args.post,
                    **(flatten({post.name: dataclasses.asdict(post.settings)}) if post is not None else {}),
                    "inputs": [[item.source, item.name] for item in inputs]}
        bars = not args.no_progress and context.world_size == 1  # one process: a bar per input too
        run_batch(inputs, Path(args.out),
                  lambda source, folder: _detect_into(predictor, args, source, folder, progress=bars),
                  identity=identity, resume=args.resume, skip_bad=args.skip_bad, context=context,
                  progress=not args.no_progress)
    return 0


def _detect_into(predictor, args: argparse.Namespace, source, out: Path, *, progress: bool,
                 counts: Optional[dict] = None) -> tuple[int, int]:
    """Detect one input (a path, a URL or an opened source) into ``out`` (``detections.jsonl``,
    ``annotated.mp4``); ``counts`` follows the frames and detections written; returns (frames, detections)."""
    source = _open(args, source, predictor)  # missing / not a video: error naming the input
    counts = {"frames": 0, "detections": 0} if counts is None else counts
    out.mkdir(parents=True, exist_ok=True)
    # of a killed run (SIGKILL): files ".detections.jsonl.XXXXXXXX.tmp", ...; the --out folder itself is cleared
    # by its lock, a batch input's folder only here
    remove_stale_temporaries(out)
    _write_outputs(predictor, source, out, video=not args.no_video, progress=progress, post=chosen_post(args),
                   score_thr=args.score_thr, counts=counts)
    return counts["frames"], counts["detections"]


def _input_options(pairs: list[str]) -> dict[str, str]:
    """``--input-option KEY=VALUE`` (repeated) as FFmpeg's options dict."""
    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise InputError(f"--input-option {pair!r}: expected KEY=VALUE (an FFmpeg option, e.g. rtsp_transport=tcp)")
        options[key.strip()] = value
    return options


def _warn_unused_input_options(pairs: list[str], sources: list[str]) -> None:
    """Check ``--input-option`` before anything is loaded (a pair that is not KEY=VALUE is refused) and warn, in
    one line, of the options no input will use: all of them when no input is a live stream (files are opened
    without them), else those FFmpeg has no option for (a typo would otherwise be ignored without a word)."""
    from dsfnet.inference.ffmpeg_options import unknown_options

    names = list(_input_options(pairs))
    if not names:
        return
    if not any(is_live_input(source) for source in sources):
        warnings.warn(f"--input-option {', '.join(names)}: not used, the options apply to live streams (a URL, a "
                      "camera, -) and no input is one")
    elif unknown := unknown_options(names):
        warnings.warn(f"--input-option {', '.join(unknown)}: not used, FFmpeg has no option of that name (see "
                      "ffmpeg -h full)")


def _classes(text: Optional[str]) -> Optional[list[str]]:
    """``--classes car,dog`` as a list (``None``: all classes)."""
    if text is None:
        return None
    classes = [name.strip() for name in text.split(",") if name.strip()]
    if not classes:
        raise InputError("--classes is empty")
    return classes


def _write_outputs(predictor, source, out: Path, *, video: bool, progress: bool, post, score_thr: float,
                   counts: dict) -> None:
    """Stream the predictions into ``detections.jsonl`` (and ``annotated.mp4``); with ``post`` (``--post``'s choice)
    the video is post-processed first and detections below ``score_thr`` dropped afterwards; ``counts`` follows
    the frames and detections written (:func:`_write_files`, :func:`_write_live`)."""
    num_frames = None if source.live else source.count()  # files: one decode pass (warns about truncated streams)
    bar = tqdm(predictor.predict(source), total=num_frames, unit="frame", desc=source.name, disable=not progress,
               dynamic_ncols=True, leave=False)
    results = bar if post is None else postprocess_stream(post.processor.run, bar, post.settings,
                                                          score_thresh=score_thr,
                                                          images=source.frames() if video else None)
    (_write_live if source.live else _write_files)(results, source, out, video=video, counts=counts)
    bar.close()
    if not video and discard(out / "annotated.mp4"):  # an earlier run's video would not show these detections
        print(f"removed {out / 'annotated.mp4'} of an earlier run (--no-video)")


def _write_files(results, source, out: Path, *, video: bool, counts: dict) -> None:
    """Files: both outputs go to temporaries, moved into place (the video first) once every frame is done; any
    failure (also Ctrl-C, SIGTERM) removes both."""
    with atomic_open(out / "detections.jsonl", "w") as handle, \
            (VideoWriter(out / "annotated.mp4", fps=source.fps) if video else contextlib.nullcontext()) as writer:
        for result in results:
            handle.write(_json_line(result, source))
            _count(counts, result)
            if video:
                writer.write(_drawn(result))


def _write_live(results, source, out: Path, *, video: bool, counts: dict) -> None:
    """Live streams: both outputs written in place, a whole JSON line and a frame at a time, and closed cleanly
    (kept) whatever ends the stream. After a failure both are cut back to the frames both hold whole: the video to
    its last complete fragment (a full disk), the JSON-lines file to the frames of the video."""
    jsonl = out / "detections.jsonl"
    writer = VideoWriter(out / "annotated.mp4", fps=source.fps, live=True) if video else None
    with open(jsonl, "wb", buffering=0) as handle:
        try:
            for result in results:
                append_whole(handle, _json_line(result, source).encode("utf-8"))
                _count(counts, result)
                if writer is not None:
                    writer.write(_drawn(result))
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                for line in drop_last_lines(jsonl, counts["frames"] - writer.abort()):
                    counts["frames"] -= 1
                    counts["detections"] -= len(json.loads(line)["detections"])
            raise


def _json_line(result, source) -> str:
    return json.dumps(result.to_json(source.name)) + "\n"


def _count(counts: dict, result) -> None:
    counts["frames"] += 1
    counts["detections"] += len(result.scores)


def _drawn(result):
    """The frame of ``result`` with its detections drawn."""
    return draw_detections(result.image, result.boxes, result.labels, result.class_names, result.scores)
