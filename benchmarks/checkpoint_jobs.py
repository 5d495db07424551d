"""What the scripts that evaluate trained checkpoints again (``knockout.py``, ``temporal_average.py``) share:
their common options, one worker process per checkpoint, and the JSON report."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from dsfnet.atomic import atomic_write_text
from pinned_jobs import pin_to, run_pinned


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--split``, ``--threads``, ``--jobs`` and ``--out``."""
    parser.add_argument("--data", type=Path, required=True,
                        help="VID-layout root of the labelled held-out videos (the ablation's synth_heldout_*)")
    parser.add_argument("--split", default="VID_val_videos", help="ImageSets split of --data")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each evaluation")
    parser.add_argument("--jobs", type=int, default=1,
                        help="evaluations at once, each in its own process on its own --threads cores")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON to this file")


def evaluate_in_workers(script: str, todo: list[Path], args: argparse.Namespace, options: list[str]) -> None:
    """``script`` (a benchmark's own file) on each checkpoint of ``todo`` in a process of its own, with the common
    options and ``options``, ``--jobs`` at a time on disjoint cores; a failed worker stops with its stderr."""
    def one(weights: Path, cores) -> None:
        started = time.perf_counter()
        command = [sys.executable, script, str(weights), "--data", str(args.data), "--split", args.split,
                   "--threads", str(args.threads), *options]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=pin_to(cores))
        if done.returncode != 0:
            raise SystemExit(f"{weights} failed (exit status {done.returncode}):\n{done.stderr}")
        print(f"{time.strftime('%H:%M:%S')} evaluated {weights} in {time.perf_counter() - started:.0f} s", flush=True)

    run_pinned(todo, args.jobs, args.threads, one)


def save_report(args: argparse.Namespace, results: dict, table: dict) -> None:
    """``{"runs", "summary", "settings"}`` written whole to ``--out`` (nothing without it)."""
    if args.out is None:
        return
    atomic_write_text(args.out, json.dumps({"runs": results, "summary": table,
                                            "settings": {"data": str(args.data), "split": args.split}}, indent=1))
    print(f"\nsaved {args.out}")
