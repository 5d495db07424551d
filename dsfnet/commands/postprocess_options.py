"""Options shared by ``dsfnet detect`` and ``dsfnet eval``: ``--post`` (Seq-NMS) and, for ``eval``, ``--metrics``.

The commands call :func:`add_postprocess_arguments` / :func:`add_metrics_argument` when building their parser and
:func:`postprocess_params` / :func:`postprocess_split` to apply what was asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path
from typing import Any, NamedTuple, Optional

from dsfnet.atomic import discard
from dsfnet.data.records import DatasetRecord
from dsfnet.evaluation.coco_metrics import GROUND_TRUTH_FILE, RESULTS_FILE
from dsfnet.evaluation.detections import Detections, write_jsonl
from dsfnet.postprocess.apply import postprocess_dataset
from dsfnet.postprocess.base import PostProcessor
from dsfnet.registry import METRICS, POSTPROCESSORS


class ChosenPost(NamedTuple):
    """What ``--post NAME`` chose: the registered post-processor and its settings from the command line."""

    name: str
    processor: PostProcessor
    settings: Any


def add_postprocess_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "post-processing", "offline only: Seq-NMS needs the whole video's detections before any frame is final, "
        "so it runs after the last frame of each video has been detected")
    described = "; ".join(f"{name}: {POSTPROCESSORS.get(name).help}" for name in POSTPROCESSORS.names())
    group.add_argument("--post", choices=("none", *POSTPROCESSORS.names()), default="none",
                       help=f"{described} (default none)")
    options = {}
    for name in POSTPROCESSORS.names():
        options[name] = _RecordingGroup(group)
        POSTPROCESSORS.get(name).add_arguments(options[name])
    parser.set_defaults(post_options={name: recorded.actions for name, recorded in options.items()})


class _RecordingGroup:
    """An argument group that keeps the actions a post-processor adds, to tell which options belong to it."""

    def __init__(self, group: argparse._ArgumentGroup):
        self.group, self.actions = group, []

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        self.actions.append(self.group.add_argument(*args, **kwargs))
        return self.actions[-1]


def warn_unused_post_options(args: argparse.Namespace) -> None:
    """Warn in one line of the options of a post-processor that ``--post`` does not choose and that are set to
    something else than their default (``--seqnms-link-iou 0.3`` without ``--post seqnms``): they are ignored."""
    for name, actions in args.post_options.items():
        given = [action.option_strings[0] for action in actions if getattr(args, action.dest) != action.default]
        if given and name != args.post:
            warnings.warn(f"{', '.join(given)}: ignored, {'it applies' if len(given) == 1 else 'they apply'} "
                          f"with --post {name} only (this run has --post {args.post})")


def chosen_post(args: argparse.Namespace) -> Optional[ChosenPost]:
    """The post-processor of ``--post NAME`` with its settings, or None for ``--post none``; bad values raise
    :class:`dsfnet.errors.InputError`."""
    if args.post == "none":
        return None
    processor = POSTPROCESSORS.get(args.post, key="--post")
    return ChosenPost(args.post, processor, processor.settings(args))


def postprocess_split(args: argparse.Namespace, dataset: DatasetRecord, detections: Detections,
                      out_dir: Path) -> tuple[Detections, dict]:
    """Apply ``--post NAME`` to a split's detections and write them to ``out_dir/detections_NAME.jsonl``.

    Returns the detections to evaluate and the fields to add to ``report.json`` (``post``, and ``NAME`` with the
    settings and the post-processed detection file).
    """
    post = chosen_post(args)
    if post is None:
        return detections, {"post": "none"}
    processed = postprocess_dataset(post.processor.run, dataset, detections, post.settings, progress=True,
                                    label=post.processor.label)
    path = Path(out_dir) / post_file(post.name)
    write_jsonl(path, dataset, processed)
    return processed, {"post": post.name, post.name: {**dataclasses.asdict(post.settings), "detections_file": str(path),
                                                      "detections_before": len(detections),
                                                      "detections_after": len(processed)}}


def post_file(name: str) -> str:
    """The detections file that post-processor ``name`` writes beside the report."""
    return f"detections_{name}.jsonl"


def remove_outputs_not_asked(args: argparse.Namespace, out_dir: Path) -> None:
    """Remove an earlier run's optional outputs that this run's ``--post`` / ``--metrics`` do not write, so that
    no stale file stays beside the new report (printing each one removed)."""
    stale = [post_file(name) for name in POSTPROCESSORS.names() if name != args.post] + \
        ([GROUND_TRUTH_FILE, RESULTS_FILE] if "coco" not in args.metrics else [])
    for name in stale:
        if discard(Path(out_dir) / name):
            print(f"removed {Path(out_dir) / name} of an earlier run (not asked for now)")


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"vid,coco"`` → ``("vid", "coco")``: registered metrics; the devkit's ``vid`` must be among them (its
    report is the base)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or "vid" not in names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(METRICS.names())} that "
                                         f"includes vid, got {text!r}")
    return names


def add_metrics_argument(parser: argparse.ArgumentParser) -> None:
    described = "; ".join(f"{name}: {METRICS.get(name).help}" for name in METRICS.names())
    parser.add_argument("--metrics", type=parse_metrics, default=("vid",), metavar="LIST",
                        help=f"comma-separated; {described} (default vid)")
