"""Cost of the fusion modules for the test frame only vs for all frames of a clip (DESIGN §2.1, §2.2).

At inference only the test frame's features are needed, so FrameFusion scores d query tokens against n·d keys
instead of n·d against n·d, and InstanceFusion scores one frame's proposals against all n frames' proposals.
Defaults are the paper's test setting: n = 21 frames, d = 1024 conv4 channels of R101 on 38×63 maps
(600 px shorter side), 300 proposals per frame, 1024-d RoI features, 16 heads.

Each case runs in a fresh subprocess so that its peak memory is its own: on CPU the increase of the process's
peak RSS (``ru_maxrss``) over its value once the inputs exist; on CUDA ``max_memory_allocated`` above the
memory held by the inputs. Time is the median of ``--repeats`` runs, under ``torch.inference_mode``.

    python benchmarks/fusion_cost.py [--repeats 1] [--device cpu|cuda] [--n 21] [--proposals 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from dsfnet.models.fusion import FrameFusion, InstanceFusion

CASES = ("frame-test", "frame-all", "instance-test", "instance-all")
HEADS = 16


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run_case(case: str, args: argparse.Namespace) -> dict:
    """Build one case's module and inputs, run it, and return its median time and peak memory increase."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    if case.startswith("frame"):
        module = FrameFusion(args.channels).to(device)
        feats = torch.randn(args.n, args.channels, args.height, args.width, device=device)
        query_frames = [0] if case == "frame-test" else None

        def step():
            return module(feats, query_frames=query_frames)

    else:
        m = args.n * args.proposals
        module = InstanceFusion(args.roi_dim, num_heads=HEADS).to(device)
        feats = torch.randn(m, args.roi_dim, device=device)
        xy = torch.rand(m, 2, device=device) * 900
        boxes = torch.cat([xy, xy + 16 + torch.rand(m, 2, device=device) * 300], dim=1)
        query_index = torch.arange(args.proposals, device=device) if case == "instance-test" else None

        def step():
            return module(feats, boxes, query_index=query_index)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    with torch.inference_mode():
        if device.type == "cuda":
            step()  # cuBLAS and allocator warm-up, not part of the timing; its peak counts like any run's
            sync()
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        else:
            # On CPU ru_maxrss can only grow, so a warm-up would hide the first run's peak: none here.
            base = peak_bytes(device)
        for _ in range(args.repeats):
            start = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - start)
    return {"ms": 1000 * statistics.median(times), "peak_mib": (peak_bytes(device) - base) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per case (median reported)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--n", type=int, default=21, help="frames per clip (test frame + n-1 support frames)")
    parser.add_argument("--proposals", type=int, default=300, help="proposals per frame")
    parser.add_argument("--channels", type=int, default=1024, help="conv4 channels d")
    parser.add_argument("--height", type=int, default=38, help="conv4 map height")
    parser.add_argument("--width", type=int, default=63, help="conv4 map width")
    parser.add_argument("--roi-dim", type=int, default=1024, help="RoI feature width")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()

    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return

    results = {}
    for case in CASES:
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--case", case], check=True, capture_output=True, text=True
        )
        results[case] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"# {case}: {results[case]['ms']:.1f} ms", file=sys.stderr, flush=True)

    d, m = args.channels, args.n * args.proposals
    print(
        f"device={args.device}, threads={torch.get_num_threads()}, n={args.n}, d={d}, h×w={args.height}×{args.width}, "
        f"proposals/frame={args.proposals} (m={m}), repeats={args.repeats}\n"
    )
    labels = {
        "frame-test": f"frame fusion, test frame ({d} × {args.n * d} logits)",
        "frame-all": f"frame fusion, all frames ({args.n * d} × {args.n * d} logits)",
        "instance-test": f"instance fusion, test frame ({args.proposals} × {m} × {HEADS} heads)",
        "instance-all": f"instance fusion, all frames ({m} × {m} × {HEADS} heads)",
    }
    print("| case | time ms | peak MiB | ratio all/test-frame (time, memory) |")
    print("|---|---:|---:|---:|")
    for case in CASES:
        r = results[case]
        ratio = ""
        if case.endswith("all"):
            test = results[case.replace("all", "test")]
            ratio = f"{r['ms'] / test['ms']:.1f}×, {r['peak_mib'] / max(test['peak_mib'], 1e-9):.1f}×"
        print(f"| {labels[case]} | {r['ms']:.1f} | {r['peak_mib']:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
