"""Per-frame time and peak memory: baseline vs DSFNet ``cached`` vs DSFNet ``exact`` at several n (issue 7).

    python benchmarks/speed.py                      # CPU: ResNet-50, shorter side 320, fp32 and bf16
    python benchmarks/speed.py --device cuda        # GPU: ResNet-101, shorter side 600, bf16
    python benchmarks/speed.py --device cuda --compile --n 21   # the same with torch.compile'd conv stacks
    python benchmarks/speed.py --toy --rounds 1     # the tests' tiny model at 128 px: checks the script only
    python benchmarks/speed.py --backbones resnet50 timm:convnext_tiny timm:regnety_040 \
        timm:tf_efficientnet_lite0 --n 5 --precision fp32   # cached DSFNet per backbone, as ratios to the first

Each (model, mode, n) case runs in its own subprocess over the same synthetic video (random weights: speed does
not depend on them), so peak memory is that case's alone (CPU: peak RSS of the process; GPU:
``torch.cuda.max_memory_allocated``). Time per frame is the steady state: the mean time between consecutive
output frames once the support features are built (the one-off cost of building them is printed separately).
The cases are measured in ``--rounds`` rounds (default 3); each round measures, for every n, the baseline, ``cached``
and ``exact`` back to back, and every ratio is taken within a round (against that round's baseline at the same
precision: fp32, or bf16 autocast = ``test.precision: bf16``, fast on GPUs and on CPUs with AMX / AVX512-BF16).
The table prints the median of the per-round ratios and their min–max, so that a machine that slows down between
cases (seen here: the same baseline case at 4,073 ms per frame in one run and 815 ms in the next) cannot fake a
ratio. ``--backbones A B ...`` measures DSFNet ``cached`` at the first ``--n`` with each backbone instead, every
backbone once per round, as ratios to the first one within each round. ``--json FILE`` also writes every round's
cases. ``--compile``: the per-frame convolution stacks
(``conv4``, ``conv5`` and the RPN head, fixed shapes within a video) run through ``torch.compile``; their compile
time falls into the one-off setup column, and ``exact`` compiles again for its clip's shape.
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
    config = load_config(REPO / "configs" / ("tiny.yaml" if args.toy else f"vid_r101_{args.variant}.yaml"), [
        f"model.variant={args.variant}", f"model.backbone.name={args.backbone}", f"data.min_size={args.min_size}",
        f"data.max_size={args.max_size}"])
    device = torch.device(args.device)
    model = build_model(config.model).to(device)
    if args.compile:
        for module in (model.backbone.conv4, model.backbone.conv5, model.rpn.head):
            module.compile()
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


def measure(args: argparse.Namespace, folder: str, precision: str, variant: str, mode: str, n: int) -> dict:
    """One case in a fresh subprocess (its peak memory is its own)."""
    command = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
               "--backbone", args.backbone, "--measure", str(args.measure), "--measure-exact", str(args.measure_exact),
               "--precision", precision, "--case", f"{variant}:{mode}:{n}:{folder}"]
    command += ["--toy"] * args.toy + ["--compile"] * args.compile
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    print(f"measured {precision} {variant} {mode} n={n}: {result}", file=sys.stderr, flush=True)
    return result


def measure_rounds(args: argparse.Namespace, folder: str) -> dict:
    """``rounds[(precision, n)]``: one dict per round with the baseline, cached and exact cases measured back to
    back (baseline, cached, exact for each n, every round), so that a machine slowing down between rounds
    changes all three alike and the per-round ratios stay comparable."""
    rounds: dict = {}
    for round_index in range(args.rounds):
        print(f"round {round_index + 1} of {args.rounds}", file=sys.stderr, flush=True)
        for precision in args.precision:
            for n in args.n:
                rounds.setdefault((precision, n), []).append({
                    "baseline": measure(args, folder, precision, "baseline", "cached", 1),
                    "cached": measure(args, folder, precision, "dsfnet", "cached", n),
                    "exact": measure(args, folder, precision, "dsfnet", "exact", n)})
    return rounds


def measure_backbones(args: argparse.Namespace, folder: str) -> list[dict]:
    """One dict per round: backbone -> its DSFNet ``cached`` case at the first ``--n`` (every backbone measured
    once per round, in the order given, so that ratios within a round compare like with like)."""
    rounds = []
    for round_index in range(args.rounds):
        print(f"round {round_index + 1} of {args.rounds}", file=sys.stderr, flush=True)
        cases = {}
        for backbone in args.backbones:
            cases[backbone] = measure(argparse.Namespace(**{**vars(args), "backbone": backbone}), folder,
                                      args.precision[0], "dsfnet", "cached", args.n[0])
        rounds.append(cases)
    return rounds


def print_backbone_table(args: argparse.Namespace, rounds: list[dict], width: int) -> None:
    reference = args.backbones[0]
    print(f"device={args.device} DSFNet cached n={args.n[0]} {args.precision[0]} frames {width}x{args.min_size} "
          f"threads={args.threads}; random weights; {args.rounds} rounds, each measuring every backbone; medians "
          f"over rounds, [min–max] of the per-round ratios to {reference}\n")
    print(f"| backbone | ms / frame | × {reference} | peak MiB | × {reference} |")
    print("|---|---:|---:|---:|---:|")
    for backbone in args.backbones:
        times = [r[backbone]["ms_per_frame"] / r[reference]["ms_per_frame"] for r in rounds]
        memory = [r[backbone]["peak_mib"] / r[reference]["peak_mib"] for r in rounds]
        print(f"| `{backbone}` | {statistics.median(r[backbone]['ms_per_frame'] for r in rounds):.0f} | "
              f"{spread(times)} | {statistics.median(r[backbone]['peak_mib'] for r in rounds):.0f} | "
              f"{spread(memory)} |")


def spread(values: list[float], digits: int = 2) -> str:
    """``median [min-max]``."""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def print_table(args: argparse.Namespace, rounds: dict, width: int) -> None:
    compiled = "torch.compile'd conv4, conv5 and RPN head" if args.compile else "eager"
    print(f"device={args.device} backbone={args.backbone} frames {width}x{args.min_size} threads={args.threads} "
          f"{compiled}; random weights, 300 proposals per frame; {args.rounds} rounds, each measuring baseline, "
          "cached and exact back to back; medians over rounds, [min–max] of the per-round ratios\n")
    print("| precision | model | mode | n | ms / frame | frames / s | × baseline | peak MiB | × baseline | "
          "one-off support setup s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (precision, n), measured in rounds.items():
        for name in ("baseline", "cached", "exact"):
            if name == "baseline" and n != args.n[0]:
                continue  # one baseline row per precision (every pair still uses its own round's baseline)
            values = [r[name] for r in measured]
            times = [r[name]["ms_per_frame"] / r["baseline"]["ms_per_frame"] for r in measured]
            memory = [r[name]["peak_mib"] / r["baseline"]["peak_mib"] for r in measured]
            median = {key: statistics.median(v[key] for v in values) for key in values[0]}
            model, mode, frames = ("baseline", "-", 1) if name == "baseline" else ("dsfnet", name, n)
            print(f"| {precision} | {model} | {mode} | {frames} | {median['ms_per_frame']:.0f} | "
                  f"{1000 / median['ms_per_frame']:.1f} | {spread(times)} | {median['peak_mib']:.0f} | "
                  f"{spread(memory)} | {median['setup_s']:.1f} |")
    print()
    for (precision, n), measured in rounds.items():
        ratios = [r["exact"]["ms_per_frame"] / r["cached"]["ms_per_frame"] for r in measured]
        print(f"{precision} n={n}: exact / cached time = {spread(ratios, 1)}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--n", type=int, nargs="+", default=[5, 13, 21], help="frames per clip to measure")
    parser.add_argument("--measure", type=int, default=6, help="test frames timed per cached/baseline case")
    parser.add_argument("--measure-exact", type=int, default=2, help="test frames timed per exact case")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (baseline, cached, exact) per n; ratios are medians over rounds")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--width", type=int, default=None, help="video width (default: 16:9 of the shorter side)")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=None,
                        help="precisions to measure (default: fp32 and bf16 on CPU, bf16 on GPU)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the per-frame convolution stacks (conv4, conv5, RPN head)")
    parser.add_argument("--toy", action="store_true",
                        help="configs/tiny.yaml's model at 128 px (a dry run of the script: its numbers measure nothing)")
    parser.add_argument("--backbone", default=None,
                        help="model.backbone.name (e.g. timm:convnext_tiny; default resnet50 on CPU, resnet101 on GPU)")
    parser.add_argument("--backbones", nargs="+", default=None, metavar="NAME",
                        help="compare these backbones instead (DSFNet cached at the first --n, the first --precision; "
                             "ratios to the first backbone)")
    parser.add_argument("--json", default=None, help="also write every round's cases to this JSON file")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    gpu = args.device.startswith("cuda")
    args.precision = args.precision or (["bf16"] if gpu else ["fp32", "bf16"])
    backbone, args.min_size, args.max_size = (
        ("resnet_tiny", 128, 228) if args.toy else ("resnet101", 600, 1000) if gpu else ("resnet50", 320, 570))
    args.backbone = args.backbone or backbone
    if args.case:
        args.variant, args.mode, n, args.frames_dir = args.case.split(":", 3)
        args.n = int(n)
        args.measure = args.measure_exact if args.mode == "exact" else args.measure
        print(json.dumps(run_case(args)))
        return
    width = args.width or round(args.min_size * 16 / 9)
    with tempfile.TemporaryDirectory() as folder:
        write_frames(Path(folder), max(args.n) + args.measure + 2, width, args.min_size)
        if args.backbones:
            print_backbone_table(args, measure_backbones(args, folder), width)
            return
        rounds = measure_rounds(args, folder)
    print_table(args, rounds, width)
    if args.json:
        write_json(args, rounds, width)


def write_json(args: argparse.Namespace, rounds: dict, width: int) -> None:
    """Every round's cases: ``{"settings": ..., "cases": [{"precision", "n", "round", "baseline", "cached",
    "exact"}, ...]}``."""
    from dsfnet.atomic import atomic_write_text

    settings = {"device": args.device, "backbone": args.backbone, "size": [width, args.min_size],
                "threads": args.threads, "compile": args.compile, "rounds": args.rounds}
    cases = [{"precision": precision, "n": n, "round": index, **measured}
             for (precision, n), per_round in rounds.items() for index, measured in enumerate(per_round)]
    atomic_write_text(args.json, json.dumps({"settings": settings, "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    main()
