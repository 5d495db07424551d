"""Online (causal) inference: per-frame latency and peak memory over a long stream (issue 14).

    python benchmarks/online.py                                     # bundled synthetic models, 2,000 frames
    python benchmarks/online.py --model resnet50 --threads 1 --out runs/online_r50.json   # ResNet-50, 569x320

For each case — the baseline, and DSFNet ``causal`` with the ``recent`` and ``spread`` memories at each ``--n`` —
a fresh subprocess streams synthetic frames (moving shapes, generated one at a time, so the source holds no
video in memory) through ``VideoPredictor.stream`` and writes one JSON line per frame, flushed, to a file.
Latency of a frame = time from the frame being produced ("decoded") to its JSON line being written; the table
gives its median and 95th percentile (the first ``--warmup`` frames excluded: allocator and thread-pool warm-up),
and the median CPU time of the process over the same interval (which other load on the machine changes less).
Peak memory = peak RSS of that subprocess, read after ``--short`` frames (default 200) and at the end of the
``--frames``-frame stream (default 2,000): the frames are generated deterministically, so the first reading is the
peak a 200-frame run has, and a memory that does not grow with the stream gives a long / short ratio of ~1 (the
acceptance bound is 1.05). The resident size every 100 frames is kept in the results too.

With ``--out``, every finished case is saved there at once (atomically) and a rerun with the same settings skips
the cases already done, so a long run (ResNet-50: about 1-2 s per frame per core) can be stopped and continued.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from pinned_jobs import check_cores, pin_to, run_pinned

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
    latencies, cpu, resident = [], [], {}
    short_peak = None
    with open(args.jsonl, "w", encoding="utf-8") as handle:
        for result in predictor.stream(frames(args.frames, width, height, produced)):
            handle.write(json.dumps(result.to_json("stream")) + "\n")
            handle.flush()
            latencies.append(1000 * (time.perf_counter() - produced[result.index][0]))
            cpu.append(1000 * (time.process_time() - produced[result.index][1]))
            done = result.index + 1
            if done == args.short:
                short_peak = peak_mib()
            if done % 100 == 0:
                resident[done] = resident_mib()
    return {"latencies_ms": latencies, "cpu_ms": cpu, "peak_mib": peak_mib(), "short_peak_mib": short_peak,
            "resident_mib": resident, "max_stored": predictor.stats["max_stored"],
            "backbone_frames": predictor.stats["backbone_frames"]}


def peak_mib() -> float:
    """Peak resident size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mib() -> float:
    """Resident size of this process now (MiB; Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def measure(args: argparse.Namespace, variant: str, n: int, memory: str, work: Path,
            cores: Optional[set[int]] = None) -> dict:
    """One case in a fresh process (pinned to ``cores`` when given): its latency statistics and peaks."""
    command = [sys.executable, __file__, "--case", "--model", args.model, "--variant", variant, "--n", str(n),
               "--memory", memory, "--frames", str(args.frames), "--short", str(args.short),
               "--threads", str(args.threads), "--jsonl", str(work / f"{variant}_{memory}_{n}.jsonl")]
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=pin_to(cores))
    if done.returncode != 0:
        raise SystemExit(f"case failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["backbone_frames"] != args.frames:
        raise SystemExit(f"{variant} {memory} n={n}: {result['backbone_frames']} backbone runs for {args.frames} frames")
    steady = result["latencies_ms"][args.warmup:]
    result["median_ms"] = statistics.median(steady)
    result["p95_ms"] = statistics.quantiles(steady, n=20)[-1]
    result["cpu_median_ms"] = statistics.median(result.pop("cpu_ms")[args.warmup:])
    del result["latencies_ms"]
    return result


def load_results(path: Path | None, settings: dict) -> dict:
    """The cases already measured with ``settings`` in ``path`` (``{}`` when there is none); other settings are
    refused rather than mixed into one table."""
    if path is None or not path.is_file():
        return {}
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("settings") != settings:
        raise SystemExit(f"{path}: holds results for other settings {saved.get('settings')}; "
                         f"use another --out (or delete it) to measure {settings}")
    return saved["cases"]


def case_name(variant: str, n: int, memory: str) -> str:
    return f"{variant}/{memory}/{n}"


def row(variant: str, memory: str, n: int, result: dict) -> str:
    label = "-" if variant == "baseline" else memory
    ratio = result["peak_mib"] / result["short_peak_mib"]
    return (f"| {variant} | {label} | {n} | {result['median_ms']:.1f} | {result['p95_ms']:.1f} | "
            f"{result['cpu_median_ms']:.1f} | {result['short_peak_mib']:.0f} | {result['peak_mib']:.0f} | {ratio:.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("synthetic", "resnet50"), default="synthetic",
                        help="the bundled synthetic checkpoints (160x128 frames), or ResNet-50 at 569x320 "
                             "(random weights: speed and memory do not depend on them)")
    parser.add_argument("--frames", type=int, default=2000, help="stream length")
    parser.add_argument("--short", type=int, default=200,
                        help="the peak memory after this many frames is compared with the peak at the end")
    parser.add_argument("--n", type=int, nargs="+", default=(5, 21), help="frames per clip for DSFNet, in run order")
    parser.add_argument("--memories", nargs="+", default=("recent", "spread"), choices=("recent", "spread"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each case's process")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cases measured at once, each in its own process pinned to its own --threads cores")
    parser.add_argument("--warmup", type=int, default=10, help="first frames left out of the latency statistics")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file of the results, written after every case; a rerun continues it")
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="dsfnet", help=argparse.SUPPRESS)
    parser.add_argument("--memory", default="recent", help=argparse.SUPPRESS)
    parser.add_argument("--jsonl", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        args.n = args.n[0]
        print(json.dumps(run_case(args)))
        return 0
    if not 0 < args.short <= args.frames or args.warmup >= args.frames:
        parser.error("need 0 < --short <= --frames and --warmup < --frames")

    from dsfnet.atomic import atomic_write_text

    settings = {key: getattr(args, key) for key in ("model", "frames", "short", "threads", "warmup")}
    cases = [("baseline", 1, "recent")] + [("dsfnet", n, memory) for n in args.n for memory in args.memories]
    results = load_results(args.out, settings)
    todo = [case for case in cases[1:] + cases[:1] if case_name(*case) not in results]  # the baseline last
    check_cores(parser, args.jobs, args.threads)
    saving = threading.Lock()

    def run(case: tuple[str, int, str], cores: Optional[set[int]]) -> None:
        variant, n, memory = case
        sys.stderr.write(f"measuring {variant}/{memory}/{n} over {args.frames} frames (cores {cores or 'all'})\n")
        result = measure(args, variant, n, memory, work, cores)
        with saving:
            results[case_name(*case)] = result
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(args.out, json.dumps({"settings": settings, "cases": results}, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="dsfnet_online_") as work_dir:
        work = Path(work_dir)
        run_pinned(todo, args.jobs, args.threads, run)
    print(f"| model | memory | n | median ms | p95 ms | CPU ms | peak MiB, {args.short} frames | "
          f"peak MiB, {args.frames} frames | {args.frames} / {args.short} |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant, n, memory in cases:
        print(row(variant, memory, n, results[case_name(variant, n, memory)]))
    print(f"({args.model}, CPU, {args.threads} threads per case, {args.jobs} case(s) at a time, cached, "
          f"latency over the {args.frames}-frame stream)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
