"""What a plain same-position average of a video's frames gives trained baselines, with nothing learned.

    python benchmarks/temporal_average.py runs/default_s67/baseline_seed{6,7,8,9}/final.pth \\
        --data runs/default_s67/synth_heldout_s2020_v150_f20 --weights 1 0.5 --jobs 2 --threads 1

Each baseline checkpoint detects the held-out videos again with its key frame's conv4 map moved towards the
average of the clip's n frames at the same positions (``dsfnet.diagnostics.average_frames``: ``F + w·(mean − F)``,
the support frames those of the ``cached`` path), for each weight w. The paired difference, mAP averaged minus
mAP as trained, says whether the other frames' maps at the same place carry what the key frame lacks where the
generator degraded an object: for slow objects, which stay in place, it should help the degraded frames if a
same-channel mixture can repair them at all; fast objects, which move away, are the control that it does
something. Besides the ablation's columns it reports slow / fast objects split into degraded and clean ones,
evaluated from the saved detections. Every evaluation is cached beside its checkpoint
(``eval_default_average<w>.json``), so a stopped run continues.

``--similarity`` weighs each channel's n maps by a softmax of eq. 2's logits among that channel's tokens instead of
equally (the frame fusion's attention at its identity start, less its share on other channels; cached as
``eval_default_similarity<w>.json``): with the plain average and the fusion itself at the same weight, it tells
whether the fusion's cross-channel share or its weights over the frames separate it from the average.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ablation import COLUMNS, degraded_groups, detections_cache, eval_cache, evaluate_run, load_detections
from checkpoint_jobs import add_common_arguments, evaluate_in_workers, save_report
from dsfnet.data.vid import read_vid_split
from dsfnet.engine.checkpoint import config_from_checkpoint, load_checkpoint
from dsfnet.evaluation.motion import dataset_motion_ious, group_mask
from dsfnet.evaluation.vid_map import evaluate
from paired_stats import paired_t_test
from pinned_jobs import check_cores

TAG = "default"  # the ablation's evaluation of a checkpoint as trained
CROSS = tuple(f"{motion} {state}" for motion in ("slow", "fast") for state in ("degraded", "clean"))


def averaged_tag(weight: float, similarity: bool) -> str:
    return f"{TAG}_{'similarity' if similarity else 'average'}{weight:g}"


def cross_groups(dataset) -> dict[str, np.ndarray]:
    """GT masks (split order) of slow / fast objects split by whether the generator degraded them in that frame."""
    ious = np.concatenate(dataset_motion_ious(dataset))
    states = degraded_groups(dataset)
    return {f"{motion} {state}": group_mask(ious, motion) & states[state]
            for motion in ("slow", "fast") for state in ("degraded", "clean")}


def run_missing(weights_list: list[Path], args) -> None:
    """Each checkpoint with an uncached evaluation in a process of its own (this script on that checkpoint),
    ``--jobs`` at a time on disjoint cores."""
    tags = [TAG] + [averaged_tag(weight, args.similarity) for weight in args.weights]
    todo = [weights for weights in weights_list if not all(eval_cache(weights, tag).is_file() for tag in tags)]

    evaluate_in_workers(__file__, todo, args,
                        ["--weights", *map(str, args.weights)] + (["--similarity"] if args.similarity else []))


def columns_of(weights: Path, dataset, tag: str, groups: dict[str, np.ndarray], average: Optional[float],
               similarity: bool = False) -> dict:
    """The ablation's columns of one evaluation and the cross groups, from its saved detections (mAP, 0-1)."""
    result = dict(evaluate_run(weights, dataset, tag, average=average, similarity=similarity))
    motion_map = evaluate(dataset, load_detections(detections_cache(weights, tag)), extra_groups=groups).motion_map
    result.update({name: motion_map[name] for name in groups})
    return result


def summary(results: dict, weights: list[float]) -> dict:
    """Per weight: each checkpoint's gain (averaged − as trained, mAP points) per column, and the one-sided
    paired test of "averaging adds mAP" per column."""
    out = {}
    for weight in weights:
        gains = {column: [100 * (run["averaged"][f"{weight:g}"][column] - run["as trained"][column])
                          for run in results.values()] for column in COLUMNS + CROSS}
        out[f"{weight:g}"] = {"gains": gains, "tests": {column: paired_t_test(values)
                                                         for column, values in gains.items()}}
    return out


def markdown(table: dict) -> str:
    header = " | ".join(COLUMNS + CROSS)
    lines = [f"| weight | {header} |", "|---" + "|---:" * len(COLUMNS + CROSS) + "|"]
    for weight, entry in table.items():
        tests = entry["tests"]
        cells = " | ".join(f"{tests[column]['mean']:+.1f} ± {tests[column]['sd']:.1f}" for column in COLUMNS + CROSS)
        lines.append(f"| {weight} | {cells} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights_files", type=Path, nargs="+", metavar="weights",
                        help="checkpoints (final.pth) of baselines: models without a frame-level fusion")
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.5],
                        help="how far the key frame's map moves towards the clip's average (0: not at all, 1: the "
                             "plain average of the n frames), each evaluated")
    parser.add_argument("--similarity", action="store_true",
                        help="weigh each channel's maps in the n frames by a softmax of eq. 2's logits among that "
                             "channel's tokens (identity projections, the checkpoint's token normalisation) "
                             "instead of equally: the frame fusion's attention at its identity start without its "
                             "share on other channels")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    check_cores(parser, args.jobs, args.threads)
    for weight in args.weights:
        if not 0.0 < weight <= 1.0:
            parser.error(f"--weights must lie in (0, 1], got {weight:g}")
    for weights in args.weights_files:
        if not weights.is_file():
            parser.error(f"no checkpoint at {weights}")
        if config_from_checkpoint(load_checkpoint(weights)).model.uses_frame_fusion:
            parser.error(f"{weights} has a frame-level fusion of its own; give baselines (or instance variants)")
    torch.set_num_threads(args.threads)
    dataset = read_vid_split(args.data, args.split)  # also writes the split's index before any job reads it
    if args.jobs > 1:
        run_missing(args.weights_files, args)  # then the loop below only reads the cached evaluations
    groups = cross_groups(dataset)
    results = {}
    for weights in args.weights_files:
        results[str(weights.parent)] = {
            "as trained": columns_of(weights, dataset, TAG, groups, None),
            "averaged": {f"{weight:g}": columns_of(weights, dataset, averaged_tag(weight, args.similarity), groups,
                                                   weight, args.similarity)
                         for weight in args.weights}}
    table = summary(results, args.weights)
    print(markdown(table))
    save_report(args, results, table)


if __name__ == "__main__":
    main()
