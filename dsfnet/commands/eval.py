"""``dsfnet eval``: evaluate an existing detection file, or (lead's path) a model, with the VID protocol.

    dsfnet eval --detections FILE (--data ROOT [--split VID_val_videos] | --gt-json FILE) [--out DIR] [--no-motion]
    dsfnet eval CONFIG --weights CKPT [--split val] [--mode cached|exact] [--n N] [--sampling shuffled|stride|causal|shuffled_window]
                [--memory recent|spread] ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dsfnet.config import TEST_MEMORIES, TEST_SAMPLINGS

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
    parser.add_argument("--mode", choices=("cached", "exact"), default=None,
                        help="inference strategy: cached support features per video, or the full clip per frame")
    parser.add_argument("--n", type=int, default=None, help="frames per clip (test frame + n-1 support frames)")
    parser.add_argument("--sampling", choices=TEST_SAMPLINGS, default=None,
                        help="support-frame sampling: shuffled global (paper default), fixed stride, causal (past "
                             "frames only, from a bounded memory) or shuffled_window (each frame with its n-1 "
                             "neighbours in a shuffled order)")
    parser.add_argument("--memory", choices=TEST_MEMORIES, default=None,
                        help="causal support memory: recent (the n-1 latest frames) or spread (a uniform random "
                             "sample of the whole past); default test.memory")
    parser.add_argument("--stride", type=int, default=None, help="stride between support frames (--sampling stride)")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the shuffled sampling")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                        help="bf16: bfloat16 autocast (fast on GPUs and AMX / AVX512-BF16 CPUs); default test.precision")
    parser.add_argument("--device", default=None,
                        help="torch device for the model path (cpu, cuda, cuda:1, ...); default: cuda if available")


def load_ground_truth(data: str | None, split: str | None, gt_json: str | None):
    """The ``DatasetRecord`` to evaluate against, from a VID root or a CocoVID JSON file."""
    if (data is None) == (gt_json is None):
        raise ValueError("give the ground truth with exactly one of --data ROOT or --gt-json FILE")
    if gt_json is not None:
        if not Path(gt_json).is_file():
            raise FileNotFoundError(f"ground-truth JSON not found: {gt_json}")
        from dsfnet.data.cocovid import read_cocovid
        return read_cocovid(gt_json, image_root=None)
    if not Path(data).is_dir():
        raise FileNotFoundError(f"dataset root not found: {data}")
    from dsfnet.data.vid import read_vid_split
    return read_vid_split(data, split or DEFAULT_VID_SPLIT, cache_dir=None, skip_bad=False)


def evaluate_and_report(dataset, detections, out_dir, motion: bool = True, title: str = "",
                        extra: dict | None = None):
    """Evaluate ``detections`` against ``dataset``, write the report files into ``out_dir``, print the table.

    Shared by the detection-file path and the model path. Returns the ``EvalResult``.
    """
    from dsfnet.evaluation.report import format_table, write_report
    from dsfnet.evaluation.vid_map import evaluate

    result = evaluate(dataset, detections, motion=motion)
    paths = write_report(result, out_dir, title=title, extra=extra)
    print(format_table(result), end="")
    print(f"report written to {paths['report.json'].parent}")
    return result


def _run_detection_file(args: argparse.Namespace) -> int:
    from dsfnet.evaluation.detections import read_detections

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
    # The model path runs inference into a Detections and then calls evaluate_and_report (lead's module).
    from dsfnet.inference.evaluate import run_model_eval
    return int(run_model_eval(args) or 0)
