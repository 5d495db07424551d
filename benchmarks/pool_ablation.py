"""Pool the paired gains of several finetune-ablation results files (``ablation.py --protocol finetune``).

The 6-hour protocol does not fit one session, and a session's run folders (with the detections that the
bootstrap over held-out videos needs) need not outlive it; what does is the committed results file of each part.
This script takes several such files, checks that they ran the same protocol on distinct seeds, and re-runs the
four one-sided paired t-tests with Holm's correction over all their seeds. Without the detections there is no
bootstrap over videos: the interval is Student's t over seeds (mean ± t·sd/√n). The different-video control is
pooled over the seeds of the files that ran it.

A seed repeated across files (the same seed re-run on another machine, where floating-point rounding makes it
another run) is refused unless ``--allow-repeated-seeds``: it shares its initial weights and data order with the
first run, so the two are not independent draws.

    python benchmarks/pool_ablation.py benchmarks/results/ablation_synth_light_finetune.json \\
        benchmarks/results/ablation_synth_light_finetune_machineB.json --seeds-of 1:6,7
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from scipy import stats

from paired_report import CONTROL, HYPOTHESES, control_removes, markdown, per_seed_gains
from paired_stats import holm, paired_t_test

#: protocol settings that must agree between pooled files (opts may differ in spelling: they are printed)
SAME_PROTOCOL = ("configs", "protocol", "iterations", "base_iterations", "finetune_lr", "train_videos", "val_videos",
                 "val_frames", "val_seed")
MOTION = ("slow", "medium", "fast")


def load_part(path: Path, keep_seeds: list[int] | None) -> dict:
    """One results file as ``{"path", "settings", "seeds", "mAP"}``, restricted to ``keep_seeds`` if given."""
    try:
        report = json.loads(path.read_text())
        settings, results = report["settings"], report["mAP"]
    except FileNotFoundError:
        sys.exit(f"error: {path}: no such results file")
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        sys.exit(f"error: {path}: not a results file of ablation.py --protocol finetune ({error})")
    seeds = list(settings["seeds"])
    wanted = seeds if keep_seeds is None else keep_seeds
    missing = sorted(set(wanted) - set(seeds))
    if missing:
        sys.exit(f"error: --seeds-of: {path} has no seed {missing[0]} (its seeds: {seeds})")
    rows = [seeds.index(seed) for seed in wanted]
    return {"path": path, "settings": settings, "seeds": wanted,
            "mAP": {variant: [runs[i] for i in rows] for variant, runs in results.items()}}


def pool(parts: list[dict], allow_repeated_seeds: bool = False) -> dict[str, list]:
    """The parts' per-seed scores concatenated (variant → list of score dicts), after checking the protocol."""
    first = parts[0]["settings"]
    for part in parts[1:]:
        for key in SAME_PROTOCOL:
            if part["settings"].get(key) != first.get(key):
                sys.exit(f"error: {part['path']}: settings.{key} is {part['settings'].get(key)!r}, "
                         f"{parts[0]['path']} has {first.get(key)!r}: not the same protocol")
    seen: dict[int, Path] = {}
    for part in parts:
        for seed in part["seeds"]:
            if seed in seen and not allow_repeated_seeds:
                sys.exit(f"error: seed {seed} is in {seen[seed]} and {part['path']}: a re-run of a seed is not an "
                         "independent draw (restrict with --seeds-of, or --allow-repeated-seeds)")
            seen.setdefault(seed, part["path"])
    variants = set.intersection(*(set(part["mAP"]) for part in parts))
    return {variant: [row for part in parts for row in part["mAP"][variant]] for variant in sorted(variants)}


def analyse(results: dict[str, list]) -> dict:
    """Per-seed gains (all objects, and by motion), t intervals and the Holm-corrected one-sided tests, in the
    shape of ``paired_report.analyse``'s report."""
    gains = per_seed_gains(results)
    t_tests = {name: paired_t_test(values) for name, values in gains.items()}
    tests = holm({name: test["p"] for name, test in t_tests.items() if name in HYPOTHESES})
    intervals = {}
    for name, test in t_tests.items():
        n = len(gains[name])
        half = stats.t.ppf(0.975, n - 1) * test["sd"] / math.sqrt(n) if n > 1 else math.nan
        intervals[name] = (test["mean"] - half, test["mean"] + half)
    motion = {column: per_seed_gains(results, column) for column in MOTION}
    return {"per_seed_gains": gains, "motion_gains": motion, "intervals": intervals, "tests": tests}


def pooled_control(parts: list[dict]) -> dict | None:
    """The different-video control over the seeds of the parts that ran it: per-seed gains of DSFNet and of its
    control over the baseline, and the share of DSFNet's mean gain that the control removes (None where DSFNet
    gained nothing). None if no part ran the control."""
    ran = [(index, part) for index, part in enumerate(parts) if "dsfnet_control" in part["mAP"]]
    if not ran:
        return None
    results = {variant: [row for _, part in ran for row in part["mAP"][variant]]
               for variant in ("baseline", "dsfnet", "dsfnet_control")}
    gains = per_seed_gains(results)
    return {"seeds": [f"{index}:{seed}" for index, part in ran for seed in part["seeds"]],
            "dsfnet_gains": gains["dsfnet > baseline"], "control_gains": gains[CONTROL],
            "removes": control_removes(gains)}


def parse_seeds_of(values: list[str], count: int) -> dict[int, list[int]]:
    """``--seeds-of INDEX:S,S,...`` → {file index: seeds}."""
    chosen = {}
    for value in values:
        index, _, seeds = value.partition(":")
        try:
            chosen[int(index)] = [int(s) for s in seeds.split(",")]
        except ValueError:
            sys.exit(f"error: --seeds-of must be INDEX:SEED,SEED,... (e.g. 1:6,7), got {value!r}")
        if not 0 <= int(index) < count:
            sys.exit(f"error: --seeds-of {value}: file index {index} is not one of 0..{count - 1}")
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path,
                        help="results files of ablation.py --protocol finetune (benchmarks/results/*.json)")
    parser.add_argument("--seeds-of", nargs="*", default=[], metavar="INDEX:SEEDS",
                        help="take only these seeds of the INDEX-th file (0-based), e.g. 1:6,7; default all")
    parser.add_argument("--allow-repeated-seeds", action="store_true",
                        help="count a seed present in two files twice (re-runs on another machine)")
    parser.add_argument("--out", type=Path, help="also save the pooled report as JSON here")
    args = parser.parse_args(argv)
    chosen = parse_seeds_of(args.seeds_of, len(args.results))
    parts = [load_part(path, chosen.get(i)) for i, path in enumerate(args.results)]
    results = pool(parts, args.allow_repeated_seeds)
    if "baseline" not in results or not all(v in results for v, _ in HYPOTHESES.values()):
        sys.exit("error: the files do not all have the baseline, frame, instance and dsfnet variants")
    labels = [f"{index}:{seed}" for index, part in enumerate(parts) for seed in part["seeds"]]
    report = analyse(results)
    control = pooled_control(parts)
    if control:
        report["control"], report["control_removes"] = control, control["removes"]
    for index, part in enumerate(parts):
        print(f"file {index}: {part['path']}: seeds {part['seeds']}, opts {part['settings'].get('opts')}")
    print("\n" + markdown(report, f"pooled paired gains over {len(labels)} runs (file:seed {', '.join(labels)}; mAP "
                                   "points, all objects; 95 % interval: Student's t over seeds)"))
    if control:
        print(f"control over {len(control['seeds'])} runs ({', '.join(control['seeds'])}): DSFNet "
              f"{statistics.fmean(control['dsfnet_gains']):+.1f}, with another video's support "
              f"{statistics.fmean(control['control_gains']):+.1f} (per seed: "
              f"{', '.join(f'{g:+.1f}' for g in control['control_gains'])})")
    if args.out:
        from dsfnet.atomic import atomic_write_text

        report["seeds"] = labels
        atomic_write_text(args.out, json.dumps(report, indent=1, default=float))
        print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
