"""What each fusion of trained checkpoints contributes at test time: mAP with the fusion, and with it knocked out.

    python benchmarks/knockout.py runs/ablation_finetune/{frame,dsfnet}_seed{0,1}/final.pth \\
        --data runs/ablation_finetune/synth_heldout_s2020_v150_f20 --fusions frame --jobs 2 --threads 1

A knocked-out fusion has its value projection zeroed (``dsfnet.diagnostics.knock_out``: θ of the frame-level
fusion, γ of both instance stages), so the checkpoint detects with everything else it learned but without that
module. The paired difference, mAP with minus mAP without, is what the module adds to the detector it was
trained with; near zero, the variant's result (its gain or loss over the baseline) comes from the shared parts'
different training, not from the fusion. Each evaluation is cached beside its checkpoint
(``eval_default.json``, the ablation's, and ``eval_default_no_<fusion>.json``), so a stopped run continues.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import torch

from ablation import COLUMNS, eval_cache, evaluate_run
from checkpoint_jobs import add_common_arguments, evaluate_in_workers, save_report
from dsfnet.data.vid import read_vid_split
from dsfnet.diagnostics import FUSIONS
from dsfnet.engine.checkpoint import config_from_checkpoint, load_checkpoint
from paired_stats import paired_t_test
from pinned_jobs import check_cores

TAG = "default"  # the ablation's evaluation of a checkpoint as trained


def knocked_tag(fusion: str) -> str:
    return f"{TAG}_no_{fusion}"


def fusions_of(weights: Path, wanted: list[str]) -> tuple[str, list[str]]:
    """The checkpoint's variant and which of ``wanted`` fusions it has (read from its config: no model is built)."""
    config = config_from_checkpoint(load_checkpoint(weights))
    has = {"frame": config.model.uses_frame_fusion, "instance": config.model.uses_instance_fusion}
    return config.model.variant, [fusion for fusion in wanted if has[fusion]]


def evaluations(fusions: list[str]) -> list[tuple[str, Optional[str]]]:
    """``(tag, knocked-out fusion or None)`` of every evaluation of a checkpoint with these fusions."""
    return [(TAG, None)] + [(knocked_tag(fusion), fusion) for fusion in fusions]


def run_missing(plans: dict[Path, tuple[str, list[str]]], args) -> None:
    """Each checkpoint with an uncached evaluation in a process of its own (this script on that checkpoint),
    ``--jobs`` at a time on disjoint cores."""
    todo = [weights for weights, (_, fusions) in plans.items()
            if not all(eval_cache(weights, tag).is_file() for tag, _ in evaluations(fusions))]

    evaluate_in_workers(__file__, todo, args, ["--fusions", *args.fusions])


def summary(results: dict, fusions: list[str]) -> dict:
    """Per (variant, fusion): each checkpoint's drop (with − without, mAP points) per column, their mean and sd,
    and the one-sided paired test of "the fusion adds mAP" on the ``all`` column."""
    out = {}
    for fusion in fusions:
        by_variant: dict[str, list[dict]] = {}
        for result in results.values():
            if fusion in result["without"]:
                by_variant.setdefault(result["variant"], []).append(result)
        for variant, runs in by_variant.items():
            drops = {column: [100 * (run["with"][column] - run["without"][fusion][column]) for run in runs]
                     for column in COLUMNS[:4]}
            out[f"{variant} without {fusion}"] = {"drops": drops, "test": paired_t_test(drops["all"])}
    return out


def markdown(results: dict, table: dict) -> str:
    lines = ["| checkpoint | variant | knocked out | mAP with | mAP without | with − without |", "|---|---|---|---:|---:|---:|"]
    for name, result in results.items():
        for fusion, scores in result["without"].items():
            with_all, without_all = 100 * result["with"]["all"], 100 * scores["all"]
            lines.append(f"| {name} | {result['variant']} | {fusion} | {with_all:.1f} | {without_all:.1f} | "
                         f"{with_all - without_all:+.1f} |")
    lines += ["", "| variant, fusion knocked out | runs | drop all (mean ± sd) | slow | medium | fast | one-sided p |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, entry in table.items():
        drops, test = entry["drops"], entry["test"]
        by_motion = " | ".join(f"{sum(drops[c]) / len(drops[c]):+.1f}" for c in COLUMNS[1:4])
        spread = f" ± {test['sd']:.1f}" if len(drops["all"]) > 1 else ""
        lines.append(f"| {name} | {len(drops['all'])} | {test['mean']:+.1f}{spread} | {by_motion} | {test['p']:.3f} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="checkpoints (final.pth) of fused variants")
    parser.add_argument("--fusions", nargs="+", choices=FUSIONS, default=list(FUSIONS),
                        help="fusions to knock out, each alone (a checkpoint without one is skipped for it)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    check_cores(parser, args.jobs, args.threads)
    for weights in args.weights:
        if not weights.is_file():
            parser.error(f"no checkpoint at {weights}")
    torch.set_num_threads(args.threads)
    dataset = read_vid_split(args.data, args.split)  # also writes the split's index before any job reads it
    plans = {weights: fusions_of(weights, args.fusions) for weights in args.weights}
    for weights, (variant, fusions) in plans.items():
        if not fusions:
            parser.error(f"{weights} ({variant}) has none of the fusions {', '.join(args.fusions)}")
    if args.jobs > 1:
        run_missing(plans, args)  # then the loop below only reads the cached evaluations
    # a run by its folder's name (frame_seed0), or by the whole folder where two runs share a name
    names = {weights: weights.parent.name for weights in plans}
    if len(set(names.values())) < len(names):
        names = {weights: str(weights.parent) for weights in plans}
    results = {}
    for weights, (variant, fusions) in plans.items():
        scores = {tag: evaluate_run(weights, dataset, tag, knockout=fusion)
                  for tag, fusion in evaluations(fusions)}
        results[names[weights]] = {"variant": variant, "with": scores[TAG],
                                   "without": {fusion: scores[knocked_tag(fusion)] for fusion in fusions}}
    table = summary(results, args.fusions)
    print(markdown(results, table))
    save_report(args, results, table)


if __name__ == "__main__":
    main()
