"""Online (causal) inference: per-frame latency and peak memory over a long stream (issue 14).

    python benchmarks/online.py                                  # bundled synthetic models, 2,000 and 200 frames
    python benchmarks/online.py --model resnet50 --frames 200 50 # ResNet-50 (random weights), shorter side 320

For each case — the baseline, and DSFNet ``causal`` with the ``recent`` and ``spread`` memories at each ``--n`` —
a fresh subprocess streams synthetic frames (moving shapes, generated one at a time, so the source holds no
video in memory) through ``VideoPredictor.stream`` and writes one JSON line per frame, flushed, to a file.
Latency of a frame = time from the frame being produced ("decoded") to its JSON line being written; the table
gives its median and 95th percentile (the first ``--warmup`` frames excluded: allocator and thread-pool warm-up),
and the median CPU time of the process over the same interval (which other load on the machine changes less).
Peak memory = peak RSS of that subprocess. Every case runs once per stream length (``--frames``, default 2,000 and
200): a memory that does not grow with the stream gives a long/short peak ratio of ~1 (the acceptance bound is
1.05).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "dsfnet" / "assets"


def frames(count: int, width: int, height: int, stamps: list):
    """``count`` RGB frames of moving shapes; the (wall, CPU) time each one is produced is appended to ``stamps``."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    background = np.stack([x * 200 // width, y * 200 // height, np.full_like(x, 90)], -1).astype(np.uint8)
    for index in range(count):
        image = background.copy()
        for k, (colour, speed) in enumerate((((230, 40, 40), 1), ((40, 220, 60), 2), ((250, 240, 30), 3))):
            side = height // 8 + height // 20 * k
            cx = int((width - side) * (0.5 + 0.5 * np.sin(index * 0.02 * speed + k)))
            cy = int((height - side) * (0.5 + 0.5 * np.cos(index * 0.015 * speed + 2 * k)))
            image[cy : cy + side, cx : cx + side] = colour
        stamps.append((time.perf_counter(), time.process_time()))
        yield image


def load(model_name: str, variant: str):
    """(model, config, frame width, frame height) of a case."""
    import torch

    from dsfnet.config import load_config
    from dsfnet.engine.checkpoint import load_model
    from dsfnet.models.build import build_model

    if model_name == "synthetic":
        model, config = load_model(ASSETS / f"synth_{variant}.pt", device="cpu")
        return model, config, 160, 128
    torch.manual_seed(0)
    config = load_config(REPO / "configs" / f"vid_r101_{variant}.yaml",
                         ["model.backbone.name=resnet50", "model.backbone.weights=null", "data.min_size=320",
                          "data.max_size=569"])
    return build_model(config.model), config, 569, 320


def run_case(args: argparse.Namespace) -> dict:
    """One case in this process: per-frame latencies (ms, wall-clock and CPU time of this process) and peak RSS
    (MiB)."""
    import torch

    from dsfnet.inference.predictor import VideoPredictor

    torch.set_num_threads(args.threads)
    model, config, width, height = load(args.model, args.variant)
    predictor = VideoPredictor(model, config, num_frames=args.n, sampling="causal", memory=args.memory,
                               mode="cached", keep_images=False)
    produced: list[float] = []
    latencies, cpu = [], []
    with open(args.jsonl, "w", encoding="utf-8") as handle:
        for result in predictor.stream(frames(args.frames, width, height, produced)):
            handle.write(json.dumps(result.to_json("stream")) + "\n")
            handle.flush()
            latencies.append(1000 * (time.perf_counter() - produced[result.index][0]))
            cpu.append(1000 * (time.process_time() - produced[result.index][1]))
    return {"latencies_ms": latencies, "cpu_ms": cpu, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "max_stored": predictor.stats["max_stored"], "backbone_frames": predictor.stats["backbone_frames"]}


def measure(args: argparse.Namespace, variant: str, n: int, memory: str, count: int, work: Path) -> dict:
    command = [sys.executable, __file__, "--case", "--model", args.model, "--variant", variant, "--n", str(n),
               "--memory", memory, "--frames", str(count), "--threads", str(args.threads),
               "--jsonl", str(work / f"{variant}_{memory}_{n}_{count}.jsonl")]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"case failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["backbone_frames"] != count:
        raise SystemExit(f"{variant} {memory} n={n}: {result['backbone_frames']} backbone runs for {count} frames")
    steady = result["latencies_ms"][args.warmup:]
    result["median_ms"] = statistics.median(steady)
    result["p95_ms"] = statistics.quantiles(steady, n=20)[-1]
    result["cpu_median_ms"] = statistics.median(result.pop("cpu_ms")[args.warmup:])
    del result["latencies_ms"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("synthetic", "resnet50"), default="synthetic",
                        help="the bundled synthetic checkpoints (160x128 frames), or ResNet-50 at 569x320 "
                             "(random weights: speed and memory do not depend on them)")
    parser.add_argument("--frames", type=int, nargs="+", default=(2000, 200), help="stream lengths")
    parser.add_argument("--n", type=int, nargs="+", default=(5, 21), help="frames per clip for DSFNet")
    parser.add_argument("--memories", nargs="+", default=("recent", "spread"), choices=("recent", "spread"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=10, help="first frames left out of the latency statistics")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="dsfnet", help=argparse.SUPPRESS)
    parser.add_argument("--memory", default="recent", help=argparse.SUPPRESS)
    parser.add_argument("--jsonl", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        args.n, args.frames = args.n[0], args.frames[0]
        print(json.dumps(run_case(args)))
        return 0

    cases = [("baseline", 1, "recent")] + [("dsfnet", n, memory) for n in args.n for memory in args.memories]
    lengths = sorted(args.frames, reverse=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dsfnet_online_") as work:
        print("| model | memory | n | median ms | p95 ms | CPU ms | " + " | ".join(f"peak MiB ({c} frames)" for c in lengths)
              + " | long / short |")
        print("|---|---|---:|---:|---:|---:|" + "---:|" * len(lengths) + "---:|")
        for variant, n, memory in cases:
            results = {count: measure(args, variant, n, memory, count, Path(work)) for count in lengths}
            longest = results[lengths[0]]
            ratio = longest["peak_mib"] / results[lengths[-1]]["peak_mib"]
            rows.append({"variant": variant, "n": n, "memory": memory, "ratio": ratio,
                         **{str(count): result for count, result in results.items()}})
            label = "-" if variant == "baseline" else memory
            print(f"| {variant} | {label} | {n} | {longest['median_ms']:.1f} | {longest['p95_ms']:.1f} | "
                  f"{longest['cpu_median_ms']:.1f} | "
                  + " | ".join(f"{results[c]['peak_mib']:.0f}" for c in lengths) + f" | {ratio:.3f} |", flush=True)
    print(f"({args.model}, CPU, {args.threads} threads, cached, latency over the {lengths[0]}-frame stream)")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
