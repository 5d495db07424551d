"""``dsfnet eval``: evaluate an existing detection file, or a model, with the VID protocol.

    dsfnet eval --detections FILE (--data ROOT [--split VID_val_videos] | --gt-json FILE) [--out DIR] [--no-motion]
    dsfnet eval CONFIG --weights CKPT [--split val] [--data ROOT] [--mode cached|exact] [--n N]
                [--sampling shuffled|stride|causal|shuffled_window] [--memory recent|spread] [--stride S] [--seed S]
                [--precision fp32|bf16] [--out DIR] [--resume]
    torchrun --nproc_per_node 8 -m dsfnet eval CONFIG --weights CKPT --out DIR [--resume]

The model path shards the split's videos across the ranks of ``torchrun`` (balanced by frame count; one process
is one rank), writes each finished video's detections to ``DIR/videos/``
(:func:`dsfnet.inference.sharded_eval.predict_split_resumable`) and, on rank 0, merges them in split order into
``DIR/detections.jsonl`` and the report files. ``--resume`` continues a killed evaluation.

Both take ``--post seqnms`` (Seq-NMS before evaluating) and ``--metrics vid,coco`` (the COCO protocol as well).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from dsfnet.commands.messages import warnings_as_lines
from dsfnet.commands.options import add_inference_options, inference_settings
from dsfnet.commands.postprocess_options import (add_metrics_argument, add_postprocess_arguments, postprocess_split,
                                                 remove_outputs_not_asked, warn_unused_post_options)
from dsfnet.config import DataConfig, load_config
from dsfnet.data.cocovid import read_cocovid
from dsfnet.data.split import read_split
from dsfnet.engine.run_dir import locked_run_dir
from dsfnet.errors import InputError, InputNotFound
from dsfnet.evaluation.detections import read_detections, write_jsonl
from dsfnet.evaluation.metrics import VidMetric
from dsfnet.evaluation.report import write_report
from dsfnet.registry import METRICS


HELP = "compute ImageNet VID mAP (all / slow / medium / fast) of a detection file or a trained model"

DEFAULT_VID_SPLIT = "VID_val_videos"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="experiment YAML: evaluate a trained model (needs --weights); omit with --detections")
    parser.add_argument("--weights", default=None, help="model checkpoint to evaluate (with CONFIG)")
    parser.add_argument("--detections", default=None, metavar="FILE",
                        help="evaluate this detection file instead of running a model: JSON-lines (one object "
                             "per frame) or devkit text 'frame_index class_index score x1 y1 x2 y2' "
                             "(1-based frame index over the split's frame list)")
    parser.add_argument("--data", default=None, metavar="ROOT",
                        help="ImageNet VID root (ILSVRC2015/ layout) holding the ground truth")
    parser.add_argument("--split", default=None,
                        help=f"split to evaluate: with --data an ImageSets file name (default {DEFAULT_VID_SPLIT});"
                             " with CONFIG the config's split name (default val)")
    parser.add_argument("--gt-json", default=None, metavar="FILE",
                        help="ground truth as a CocoVID JSON file (instead of --data)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder for report.json / report.txt / pr_curves.png / per_class_ap.png "
                             "(default: <detection file stem>_eval next to the detection file)")
    parser.add_argument("--strict", action="store_true",
                        help="with --detections: a detection frame that the ground truth does not cover is an "
                             "error (default: left out and counted in one line, for ground truth of part of a "
                             "video)")
    parser.add_argument("--opts", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides as in train (with CONFIG), e.g. --opts data.val_json=val.json "
                             "test.num_frames=9")
    parser.add_argument("--no-motion", action="store_true", help="skip the motion-group (slow/medium/fast) mAP")
    parser.add_argument("--title", default=None, help="title of the report (default: the input's name)")
    add_metrics_argument(parser)
    add_postprocess_arguments(parser)
    # Model-inference options (used with CONFIG).
    add_inference_options(parser)
    parser.add_argument("--device", default=None,
                        help="torch device for the model path (cpu, cuda, cuda:1, ...); default: cuda if available "
                             "(cuda:LOCAL_RANK under torchrun)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted model evaluation in --out: skip the videos already done "
                             "(refused unless the checkpoint, config and inference options are the same)")


def load_ground_truth(data: str | None, split: str | None, gt_json: str | None):
    """The ``DatasetRecord`` to evaluate against, from a VID root or a CocoVID JSON file."""
    if (data is None) == (gt_json is None):
        raise InputError("give the ground truth with exactly one of --data ROOT or --gt-json FILE")
    if gt_json is not None:
        if not Path(gt_json).is_file():
            raise InputNotFound(f"ground-truth JSON not found: {gt_json}")
        # Only the annotations are scored: no frame files needed, and the file's own categories are the classes.
        return read_cocovid(gt_json, image_root=str(Path(gt_json).parent))
    if not Path(data).is_dir():
        raise InputNotFound(f"dataset root not found: {data}")
    return read_split(DataConfig(root=data, val_split=split or DEFAULT_VID_SPLIT), "val")


def evaluate_and_report(dataset, detections, out_dir, *, motion: bool = True, title: str = "",
                        extra: dict | None = None, metrics: tuple[str, ...] = ("vid",)):
    """Evaluate ``detections`` against ``dataset``, write the report files into ``out_dir``, print the tables.

    Shared by the detection-file path and the model path. ``vid`` is always evaluated (the report's base); each
    other name in ``metrics`` is a registered :class:`dsfnet.evaluation.metrics.Metric` that adds its summary,
    table and exported files. Returns the ``EvalResult``.
    """
    result = VidMetric(motion=motion).evaluate(dataset, detections)
    sections, files = {}, {}
    for name in metrics:
        if name != "vid":
            metric = METRICS.get(name, key="--metrics")()
            files.update(metric.export(dataset, detections, out_dir))
            value = metric.evaluate(dataset, detections)
            sections[name] = (metric.summary(value), metric.table(value))
    paths = write_report(result, out_dir, title=title, extra={**(extra or {}), **files}, metrics=sections)
    print(VidMetric().table(result), end="")
    for _, table in sections.values():
        print(table, end="")
    print(f"report written to {paths['report.json'].parent}")
    return result


def _run_detection_file(args: argparse.Namespace) -> int:
    det_path = Path(args.detections)
    if not det_path.is_file():
        raise InputNotFound(f"detection file not found: {det_path}")
    dataset = load_ground_truth(args.data, args.split, args.gt_json)
    detections = read_detections(det_path, dataset, strict=args.strict)  # ValueError names file and line
    out_dir = Path(args.out) if args.out else det_path.with_name(det_path.stem + "_eval")
    title = args.title or f"{det_path.name}"
    extra = {"detections_file": str(det_path),
             "ground_truth": str(args.gt_json) if args.gt_json else f"{args.data}:{args.split or DEFAULT_VID_SPLIT}"}
    with locked_run_dir(out_dir, command="eval"):
        remove_outputs_not_asked(args, out_dir)
        detections, post = postprocess_split(args, dataset, detections, out_dir)
        evaluate_and_report(dataset, detections, out_dir, motion=not args.no_motion, title=title,
                            extra={**extra, **post}, metrics=args.metrics)
    return 0


def run(args: argparse.Namespace) -> int:
    with warnings_as_lines("eval"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.config is not None and args.detections is not None:
        raise InputError("give either CONFIG (evaluate a model) or --detections FILE (evaluate a file), not both")
    if args.config is None and args.detections is None:
        raise InputError("nothing to evaluate: give CONFIG --weights CKPT (a model) or --detections FILE")
    warn_unused_post_options(args)
    if args.detections is not None:
        if args.opts:
            raise InputError("--opts changes CONFIG: give it with CONFIG --weights CKPT, not with --detections")
        return _run_detection_file(args)
    if args.weights is None:
        raise InputError("evaluating a model needs --weights CKPT")
    return _run_model(args)


def _model_and_config(args: argparse.Namespace, device):
    """The checkpoint's model (on ``device``) and the evaluation config: ``CONFIG`` with ``--data`` and the
    inference options applied, and the checkpoint's own model section (refused when the architectures differ)."""
    from dsfnet.engine.checkpoint import architecture_differences, load_model

    config = load_config(args.config, args.opts)
    if args.data:
        config.data.root = args.data
    config.test = inference_settings(args, config.test)
    model, checkpoint_config = load_model(args.weights, device=device)
    differences = architecture_differences(checkpoint_config.to_dict()["model"], config.to_dict()["model"])
    if differences:
        raise InputError(f"checkpoint {args.weights} was trained with another architecture than {args.config} "
                         f"(checkpoint != config): {'; '.join(differences)}")
    return model, dataclasses.replace(config, model=checkpoint_config.model)


def _run_model(args: argparse.Namespace) -> int:
    """``dsfnet eval CONFIG --weights CKPT``: inference over the split on every rank (one process, or each rank
    of ``torchrun`` its share of the videos), then rank 0 writes the detections and the VID report."""
    from dsfnet.engine.distributed import process_group
    from dsfnet.inference.sharding import INFERENCE_TIMEOUT

    # one run per folder (rank 0 holds the lock): a second --resume would detect the same videos again
    with process_group(args.device or "auto", timeout=INFERENCE_TIMEOUT) as context, \
            locked_run_dir(_model_out_dir(args), enabled=context.is_main, command="eval"):
        return _run_model_on_ranks(args, context)


def _model_out_dir(args: argparse.Namespace) -> Path:
    """``--out``, by default ``eval_SPLIT`` beside the checkpoint."""
    return Path(args.out) if args.out else Path(args.weights).parent / f"eval_{Path(str(args.split or 'val')).name}"


def _run_model_on_ranks(args: argparse.Namespace, context) -> int:
    from dsfnet.inference.predictor import VideoPredictor
    from dsfnet.inference.sharded_eval import eval_identity, predict_split_resumable

    model, config = _model_and_config(args, context.device)
    split = args.split or "val"
    dataset = read_split(config.data, split)
    if len(dataset.class_names) != config.model.num_classes:
        raise InputError(f"the split has {len(dataset.class_names)} classes but the model predicts "
                         f"{config.model.num_classes}")
    out_dir = _model_out_dir(args)
    predictor = VideoPredictor(model, config, keep_images=False, score_thresh=0.0)
    detections = predict_split_resumable(predictor, dataset, out_dir,
                                         identity=eval_identity(args.weights, config, split, dataset),
                                         resume=args.resume, context=context, progress=True)
    if not context.is_main:
        return 0
    write_jsonl(out_dir / "detections.jsonl", dataset, detections)
    test = config.test
    # no timings or paths of this run: the report of a sharded or resumed run equals that of one process
    extra = {"weights": str(args.weights), "config": str(args.config), "split": split,
             "mode": test.mode, "n": test.num_frames, "sampling": test.sampling, "memory": test.memory,
             "stride": test.stride,
             "seed": test.seed, "precision": test.precision, "variant": config.model.variant,
             "detections_file": "detections.jsonl"}
    title = args.title or f"{Path(args.config).stem} ({config.model.variant}, {test.mode}, n={test.num_frames}, " \
                          f"{test.sampling})"
    remove_outputs_not_asked(args, out_dir)
    detections, post = postprocess_split(args, dataset, detections, out_dir)
    evaluate_and_report(dataset, detections, out_dir, motion=not args.no_motion, title=title, extra={**extra, **post},
                        metrics=args.metrics)
    return 0
