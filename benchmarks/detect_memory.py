"""Peak memory of ``dsfnet detect`` on a short and a 10x longer video of the same resolution (issue 6, acceptance 4).

    python benchmarks/detect_memory.py [--frames 200 2000] [--size 160 128] [--n 3] [--mode cached] [--out DIR]

Writes two synthetic videos (moving shapes, H.264) with PyAV and a tiny randomly initialised checkpoint
(``configs/tiny.yaml``), runs ``dsfnet detect`` on each in its own subprocess, with ``--no-video`` and with the
annotated video, and prints each run's peak resident memory (``ru_maxrss`` of that process alone), frames/s
and the long/short ratio. Streaming inference should keep the ratio near 1 (the acceptance bound is 1.5); it also
re-decodes the annotated video to check its frame count and size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_video(path: Path, frames: int, width: int, height: int) -> Path:
    """Three coloured squares moving over a gradient, ``frames`` frames of ``width`` x ``height`` (H.264 where
    FFmpeg has it), written with the package's own :class:`~dsfnet.inference.video_io.VideoWriter`."""
    import numpy as np

    from dsfnet.inference.video_io import VideoWriter

    y, x = np.mgrid[0:height, 0:width]
    background = np.stack([x * 200 // width, y * 200 // height, np.full_like(x, 90)], -1).astype(np.uint8)
    writer = VideoWriter(path, fps=25)
    for index in range(frames):
        image = background.copy()
        for k, (colour, speed) in enumerate((((230, 40, 40), 1), ((40, 220, 60), 2), ((250, 240, 30), 3))):
            side = 18 + 6 * k
            cx = int((width - side) * (0.5 + 0.5 * np.sin(index * 0.02 * speed + k)))
            cy = int((height - side) * (0.5 + 0.5 * np.cos(index * 0.015 * speed + 2 * k)))
            image[cy:cy + side, cx:cx + side] = colour
        writer.write(image)
    return writer.close()


def write_checkpoint(path: Path) -> Path:
    import torch

    from dsfnet.config import load_config
    from dsfnet.engine.checkpoint import save_checkpoint, training_checkpoint
    from dsfnet.models.build import build_model

    config = load_config(REPO / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    model = build_model(config.model)
    return save_checkpoint(path, training_checkpoint(model, config, iteration=0))


# ``dsfnet`` itself, run from source; sub-commands that do not import yet (written in parallel) are left out
CLI = ("import importlib.util, sys\n"
       "from dsfnet import cli\n"
       "cli.COMMANDS = tuple(c for c in cli.COMMANDS if importlib.util.find_spec(f'dsfnet.commands.{c}'))\n"
       "sys.exit(cli.main(sys.argv[1:]))\n")


def measure(command: list[str]) -> dict:
    """Run ``command`` in a child of a fresh process, so that RUSAGE_CHILDREN is that command's alone."""
    probe = ("import json, resource, subprocess, sys, time\n"
             "start = time.perf_counter()\n"
             "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
             "print(json.dumps({'rc': done.returncode, 'seconds': time.perf_counter() - start,\n"
             "    'maxrss_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,\n"
             "    'stderr': done.stderr[-2000:]}))\n")
    output = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs=2, default=(200, 2000), help="frames of the short / long video")
    parser.add_argument("--size", type=int, nargs=2, default=(160, 128), help="width height of both videos")
    parser.add_argument("--n", type=int, default=3, help="frames per clip (test frame + n-1 support)")
    parser.add_argument("--mode", choices=("cached", "exact"), default="cached")
    parser.add_argument("--sampling", choices=("shuffled", "stride"), default="shuffled")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary folder)")
    args = parser.parse_args(argv)

    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dsfnet_detect_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = write_checkpoint(work / "tiny.pt")
    width, height = args.size
    videos = {frames: write_video(work / f"video_{frames}.mp4", frames, width, height) for frames in args.frames}
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    os.environ.update(env)
    results = {}
    for annotate in (False, True):
        for frames, video in videos.items():
            out = work / f"out_{frames}_{'video' if annotate else 'novideo'}"
            command = [sys.executable, "-c", CLI, "detect", str(video), "--weights", str(checkpoint),
                       "--out", str(out), "--n", str(args.n), "--mode", args.mode, "--sampling", args.sampling,
                       "--no-progress"] + ([] if annotate else ["--no-video"])
            result = measure(command)
            if result["rc"] != 0:
                print(result["stderr"], file=sys.stderr)
                raise SystemExit(f"dsfnet detect failed on {video}")
            lines = sum(1 for _ in open(out / "detections.jsonl"))
            if lines != frames:
                raise SystemExit(f"{out}/detections.jsonl has {lines} lines, expected {frames}")
            if annotate:
                import av

                with av.open(str(out / "annotated.mp4")) as container:
                    stream = container.streams.video[0]
                    decoded = sum(1 for _ in container.decode(stream))
                    if (decoded, stream.width, stream.height) != (frames, width, height):
                        raise SystemExit(f"annotated video has {decoded} frames of {stream.width}x{stream.height}, "
                                         f"expected {frames} of {width}x{height}")
            results[(annotate, frames)] = result
            print(f"{'annotated' if annotate else '--no-video':>10} {frames:5d} frames {width}x{height}: "
                  f"peak RSS {result['maxrss_mib']:7.1f} MiB, {result['seconds']:6.1f} s "
                  f"({frames / result['seconds']:.1f} frames/s incl. start-up)", flush=True)
    short, long = args.frames
    for annotate in (False, True):
        ratio = results[(annotate, long)]["maxrss_mib"] / results[(annotate, short)]["maxrss_mib"]
        verdict = "OK" if ratio <= 1.5 else "ABOVE 1.5"
        print(f"{'annotated' if annotate else '--no-video':>10}: peak RSS {long}/{short} frames = {ratio:.3f} ({verdict})")
    print(f"(mode {args.mode}, sampling {args.sampling}, n {args.n}; work folder {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
