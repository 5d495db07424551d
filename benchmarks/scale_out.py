"""Scale-out of ``dsfnet eval``: frames per second with 1 and 2 CPU ranks (1 thread each) and peak memory per rank.

    python benchmarks/scale_out.py                          # synthetic val split, bundled synthetic DSFNet
    python benchmarks/scale_out.py --ranks 1 2 4 --rounds 3 # more ranks (one core each), more rounds

The split is the one ``dsfnet synth`` writes (10 val videos of 40 frames at 160x128; generated into a temporary
folder unless ``--data`` names one); the model is ``dsfnet/assets/synth_dsfnet.pt`` with
``configs/synth_dsfnet.yaml``. Every case is a real ``dsfnet eval`` command: one process for 1 rank,
``python -m torch.distributed.run --nproc_per_node N`` (gloo) otherwise, ``OMP_NUM_THREADS=1`` in each rank.
Frames per second and the peak memory per rank (RSS) are read from the command's own final line; frames/s counts
from the start of inference on rank 0 until the last rank is done (start-up, model load and the report are not
in it). The cases of a round run back to back and each ratio is taken within a round; the table prints the
median over rounds and the min-max of the ratio, so that a machine whose load changes between cases (this one is
shared) cannot fake a ratio. The detections of every case are checked to be identical to the 1-rank ones.

A control row measures the machine itself in each round: N independent processes, each multiplying 512x512
matrices on one thread for a fixed time, against one such process (the ``× 1 rank`` of work any N-process job
could get on this machine, 1 for one process by definition).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FINAL_LINE = re.compile(r"inference: (\d+) frames .* rank\(s\): ([\d.]+) frames/s overall.*"
                        r"peak memory per rank ([\d, ]+) MiB")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_eval(ranks: int, args: argparse.Namespace, out: Path) -> dict:
    """One ``dsfnet eval`` with ``ranks`` ranks: {"fps", "frames", "memory": [MiB per rank], "detections": bytes}."""
    launcher = [sys.executable, "-m", "dsfnet"] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(ranks),
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "dsfnet"]
    command = launcher + ["eval", str(args.config), "--weights", str(args.weights), "--data", str(args.data),
                          "--out", str(out), "--device", "cpu", "--no-motion"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    match = FINAL_LINE.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return {"frames": int(match.group(1)), "fps": float(match.group(2)),
            "memory": [float(value) for value in match.group(3).split(",")],
            "detections": (out / "detections.jsonl").read_bytes()}


BURN = ("import time, torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\ncount, end = 0, "
        "time.perf_counter() + {seconds}\nwhile time.perf_counter() < end:\n    a @ a\n    count += 1\nprint(count)")


def machine_work(processes: int, seconds: float = 8.0) -> float:
    """Matrix products done by ``processes`` independent one-thread processes running at once for ``seconds``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running = [subprocess.Popen([sys.executable, "-c", BURN.format(seconds=seconds)], env=env,
                                stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    return float(sum(int(process.communicate()[0]) for process in running))


def measure(args: argparse.Namespace, work: Path) -> dict[int, list[dict]]:
    cases: dict[int, list[dict]] = {ranks: [] for ranks in args.ranks}
    for round_index in range(args.rounds):
        single = machine_work(1)
        for ranks in args.ranks:
            case = run_eval(ranks, args, work / f"round{round_index}_ranks{ranks}")
            case["machine"] = machine_work(ranks) / single if ranks > 1 else 1.0
            cases[ranks].append(case)
            print(f"round {round_index + 1}/{args.rounds}, {ranks} rank(s): {case['fps']:.2f} frames/s, peak "
                  f"memory per rank {', '.join(f'{m:.0f}' for m in case['memory'])} MiB; {ranks} independent "
                  f"processes do {case['machine']:.2f}x the work of one", flush=True)
    return cases


def table(cases: dict[int, list[dict]]) -> str:
    base = cases[min(cases)]
    lines = ["| ranks (1 thread each) | frames/s | × 1 rank (min–max) | control: N matmul processes' work × 1 "
             "(min–max) | peak memory per rank MiB | detections |", "|---:|---:|---:|---:|---:|---|"]
    for ranks, runs in cases.items():
        ratios = [run["fps"] / reference["fps"] for run, reference in zip(runs, base)]
        machine = [run["machine"] for run in runs]
        memory = statistics.median(max(run["memory"]) for run in runs)
        same = all(run["detections"] == reference["detections"] for run, reference in zip(runs, base))
        lines.append(f"| {ranks} | {statistics.median(run['fps'] for run in runs):.2f} | "
                     f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) | "
                     f"{statistics.median(machine):.2f} ({min(machine):.2f}–{max(machine):.2f}) | {memory:.0f} | "
                     f"{'identical' if same else 'DIFFERENT'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="synthetic VID root (default: generate one)")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "synth_dsfnet.yaml")
    parser.add_argument("--weights", type=Path, default=REPO / "dsfnet" / "assets" / "synth_dsfnet.pt")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts to measure")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all cases (medians over rounds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale_out_") as tmp:
        work = Path(tmp)
        if args.data is None:
            from dsfnet.data.synth import generate_synthetic_vid

            args.data = generate_synthetic_vid(work / "synth_vid", num_videos=0, num_det_images=0, seed=0)
        cases = measure(args, work)
    frames = cases[min(cases)][0]["frames"]
    print(f"\n`dsfnet eval` on the synthetic val split ({frames} frames), {args.rounds} round(s), "
          f"{os.cpu_count()} CPU cores:\n")
    print(table(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
