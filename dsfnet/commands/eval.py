"""``dsfnet eval``: evaluate an existing detection file, or a model, with the VID protocol.

    dsfnet eval --detections FILE (--data ROOT [--split VID_val_videos] | --gt-json FILE) [--out DIR] [--no-motion]
    dsfnet eval CONFIG --weights CKPT [--split val] [--data ROOT] [--mode cached|exact] [--n N]
                [--sampling shuffled|stride|causal|shuffled_window] [--memory recent|spread] [--stride S] [--seed S]
                [--precision fp32|bf16] [--out DIR]

The model path runs :func:`dsfnet.inference.evaluate.predict_dataset` over the split the config names, writes
``detections.jsonl`` and the report files into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from dsfnet.commands.options import add_inference_options, inference_settings
from dsfnet.config import DataConfig, load_config
from dsfnet.data.split import read_split
from dsfnet.evaluation.detections import read_detections, write_jsonl
from dsfnet.evaluation.report import format_table, write_report
from dsfnet.evaluation.vid_map import evaluate

logger = logging.getLogger(__name__)

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
    parser.add_argument("--no-motion", action="store_true", help="skip the motion-group (slow/medium/fast) mAP")
    parser.add_argument("--title", default=None, help="title of the report (default: the input's name)")
    # Model-inference options (used with CONFIG).
    add_inference_options(parser)
    parser.add_argument("--device", default=None,
                        help="torch device for the model path (cpu, cuda, cuda:1, ...); default: cuda if available")


def load_ground_truth(data: str | None, split: str | None, gt_json: str | None):
    """The ``DatasetRecord`` to evaluate against, from a VID root or a CocoVID JSON file."""
    if (data is None) == (gt_json is None):
        raise ValueError("give the ground truth with exactly one of --data ROOT or --gt-json FILE")
    if gt_json is not None:
        if not Path(gt_json).is_file():
            raise FileNotFoundError(f"ground-truth JSON not found: {gt_json}")
        return read_split(DataConfig(format="cocovid", root=str(Path(gt_json).parent), val_json=gt_json), "val")
    if not Path(data).is_dir():
        raise FileNotFoundError(f"dataset root not found: {data}")
    return read_split(DataConfig(root=data, val_split=split or DEFAULT_VID_SPLIT), "val")


def evaluate_and_report(dataset, detections, out_dir, motion: bool = True, title: str = "",
                        extra: dict | None = None):
    """Evaluate ``detections`` against ``dataset``, write the report files into ``out_dir``, print the table.

    Shared by the detection-file path and the model path. Returns the ``EvalResult``.
    """
    result = evaluate(dataset, detections, motion=motion)
    paths = write_report(result, out_dir, title=title, extra=extra)
    print(format_table(result), end="")
    print(f"report written to {paths['report.json'].parent}")
    return result


def _run_detection_file(args: argparse.Namespace) -> int:
    det_path = Path(args.detections)
    if not det_path.is_file():
        raise FileNotFoundError(f"detection file not found: {det_path}")
    dataset = load_ground_truth(args.data, args.split, args.gt_json)
    detections = read_detections(det_path, dataset)     # ValueError names file and line
    out_dir = Path(args.out) if args.out else det_path.with_name(det_path.stem + "_eval")
    title = args.title or f"{det_path.name}"
    extra = {"detections_file": str(det_path),
             "ground_truth": str(args.gt_json) if args.gt_json else f"{args.data}:{args.split or DEFAULT_VID_SPLIT}"}
    evaluate_and_report(dataset, detections, out_dir, motion=not args.no_motion, title=title, extra=extra)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.config is not None and args.detections is not None:
        raise ValueError("give either CONFIG (evaluate a model) or --detections FILE (evaluate a file), not both")
    if args.config is None and args.detections is None:
        raise ValueError("nothing to evaluate: give CONFIG --weights CKPT (a model) or --detections FILE")
    if args.detections is not None:
        return _run_detection_file(args)
    if args.weights is None:
        raise ValueError("evaluating a model needs --weights CKPT")
    return _run_model(args)


def _model_and_config(args: argparse.Namespace):
    """The checkpoint's model and the evaluation config: ``CONFIG`` with ``--data`` and the inference options
    applied, and the checkpoint's own model section (refused when the architectures differ)."""
    from dsfnet.device import resolve_device
    from dsfnet.engine.checkpoint import architecture_differences, load_model

    config = load_config(args.config)
    if args.data:
        config.data.root = args.data
    config.test = inference_settings(args, config.test)
    model, checkpoint_config = load_model(args.weights, device=resolve_device(args.device or "auto"))
    differences = architecture_differences(checkpoint_config.to_dict()["model"], config.to_dict()["model"])
    if differences:
        raise ValueError(f"checkpoint {args.weights} was trained with another architecture than {args.config} "
                         f"(checkpoint != config): {'; '.join(differences)}")
    return model, dataclasses.replace(config, model=checkpoint_config.model)


def _run_model(args: argparse.Namespace) -> int:
    """``dsfnet eval CONFIG --weights CKPT``: inference over the split, then the VID report."""
    from dsfnet.inference.evaluate import predict_dataset

    model, config = _model_and_config(args)
    split = args.split or "val"
    dataset = read_split(config.data, split)
    if len(dataset.class_names) != config.model.num_classes:
        raise ValueError(f"the split has {len(dataset.class_names)} classes but the model predicts "
                         f"{config.model.num_classes}")
    out_dir = Path(args.out) if args.out else Path(args.weights).parent / f"eval_{Path(str(split)).name}"
    started = time.perf_counter()
    detections = predict_dataset(model, dataset, config, progress=True)
    seconds = time.perf_counter() - started
    num_frames = len(dataset.frames())
    logger.info("inference: %d frames in %.1f s (%.2f frames/s)", num_frames, seconds,
                num_frames / max(seconds, 1e-9))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "detections.jsonl", dataset, detections)
    test = config.test
    extra = {"weights": str(args.weights), "config": str(args.config), "split": split,
             "mode": test.mode, "n": test.num_frames, "sampling": test.sampling, "memory": test.memory,
             "stride": test.stride,
             "seed": test.seed, "precision": test.precision, "variant": config.model.variant,
             "inference_seconds": round(seconds, 3), "detections_file": str(out_dir / "detections.jsonl")}
    title = args.title or f"{Path(args.config).stem} ({config.model.variant}, {test.mode}, n={test.num_frames}, " \
                          f"{test.sampling})"
    evaluate_and_report(dataset, detections, out_dir, motion=not args.no_motion, title=title, extra=extra)
    return 0
