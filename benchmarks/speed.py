"""Per-frame time and peak memory: baseline vs DSFNet ``cached`` vs DSFNet ``exact`` at several n (issue 7).

    python benchmarks/speed.py                      # CPU: ResNet-50, shorter side 320, fp32 and bf16
    python benchmarks/speed.py --device cuda        # GPU: ResNet-101, shorter side 600, bf16

Each (model, mode, n) case runs in its own subprocess over the same synthetic video (random weights: speed does
not depend on them), so peak memory is that case's alone (CPU: peak RSS of the process; GPU:
``torch.cuda.max_memory_allocated``). Time per frame is the steady state: the mean time between consecutive
output frames once the support features are built (the one-off cost of building them is printed separately).
All ratios are against the baseline measured in the same run at the same precision (``--precision``: fp32, or
bf16 autocast = ``test.precision: bf16``, fast on GPUs and on CPUs with AMX / AVX512-BF16).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_frames(folder: Path, frames: int, width: int, height: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(background).resize((width, height), Image.BILINEAR))
    for index in range(frames):
        image = base.copy()
        x, y = 20 + 3 * index, 30 + index
        image[y : y + height // 4, x : x + width // 5] = (220, 60, 40)
        Image.fromarray(image).save(folder / f"{index:06d}.jpg", quality=90)


def run_case(args: argparse.Namespace) -> dict:
    """One case in this process: returns seconds per frame (steady state), setup seconds and peak memory."""
    import torch

    from dsfnet.config import load_config
    from dsfnet.inference.predictor import VideoPredictor
    from dsfnet.models.build import build_model

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = load_config(REPO / "configs" / f"vid_r101_{args.variant}.yaml", [
        f"model.backbone.name={args.backbone}", f"data.min_size={args.min_size}", f"data.max_size={args.max_size}"])
    model = build_model(config.model)
    device = torch.device(args.device)
    predictor = VideoPredictor(model, config, device=device, num_frames=args.n, mode=args.mode,
                               precision=args.precision[0], keep_images=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stamps = []
    start = time.perf_counter()
    for result in predictor.predict(args.frames_dir):
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        if len(stamps) > args.measure:
            break
    steady = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"ms_per_frame": 1000 * steady, "setup_s": stamps[0] - start, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--n", type=int, nargs="+", default=[5, 13, 21], help="frames per clip to measure")
    parser.add_argument("--measure", type=int, default=6, help="test frames timed per cached/baseline case")
    parser.add_argument("--measure-exact", type=int, default=2, help="test frames timed per exact case")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--width", type=int, default=None, help="video width (default: 16:9 of the shorter side)")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=None,
                        help="precisions to measure (default: fp32 and bf16 on CPU, bf16 on GPU)")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    args.precision = args.precision or (["bf16"] if gpu else ["fp32", "bf16"])
    args.backbone = "resnet101" if gpu else "resnet50"
    args.min_size = 600 if gpu else 320
    args.max_size = 1000 if gpu else 570
    if args.case:
        args.variant, args.mode, n, args.frames_dir = args.case.split(":", 3)
        args.n = int(n)
        args.measure = args.measure_exact if args.mode == "exact" else args.measure
        print(json.dumps(run_case(args)))
        return
    width = args.width or round(args.min_size * 16 / 9)
    with tempfile.TemporaryDirectory() as folder:
        write_frames(Path(folder), max(args.n) + args.measure + 2, width, args.min_size)
        cases = [(precision, "baseline", "cached", 1) for precision in args.precision] + [
            (precision, variant, mode, n) for precision in args.precision for n in args.n
            for variant, mode in (("dsfnet", "cached"), ("dsfnet", "exact"))]
        results = {}
        for case in cases:
            precision, variant, mode, n = case
            command = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
                       "--measure", str(args.measure), "--measure-exact", str(args.measure_exact),
                       "--precision", precision, "--case", f"{variant}:{mode}:{n}:{folder}"]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[case] = json.loads(output.strip().splitlines()[-1])
            print(f"measured {precision} {variant} {mode} n={n}: {results[case]}", file=sys.stderr, flush=True)
    print(f"device={args.device} backbone={args.backbone} frames {width}x{args.min_size} threads={args.threads}; "
          f"random weights, 300 proposals per frame; ratios against the baseline at the same precision\n")
    print("| precision | model | mode | n | ms / frame | × baseline | peak MiB | × baseline | one-off support setup s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for (precision, variant, mode, n), r in results.items():
        base = results[(precision, "baseline", "cached", 1)]
        print(f"| {precision} | {variant} | {mode if variant != 'baseline' else '-'} | {n} | {r['ms_per_frame']:.0f} | "
              f"{r['ms_per_frame'] / base['ms_per_frame']:.2f} | {r['peak_mib']:.0f} | "
              f"{r['peak_mib'] / base['peak_mib']:.2f} | {r['setup_s']:.1f} |")
    for precision in args.precision:
        for n in args.n:
            cached, exact = results[(precision, "dsfnet", "cached", n)], results[(precision, "dsfnet", "exact", n)]
            print(f"\n{precision} n={n}: exact / cached time = "
                  f"{exact['ms_per_frame'] / cached['ms_per_frame']:.1f}×", end="")
    print()


if __name__ == "__main__":
    main()
