"""``dsfnet convert``: annotations of a labelling tool, or an ImageNet VID split, as CocoVID JSON (mmtracking).

    dsfnet convert ANNOTATIONS [ANNOTATIONS ...] --out FILE.json [--format cvat|mot|coco] [--media PATH]
                   [--classes a,b] [--overwrite]
    dsfnet convert ROOT --split S --out FILE.json           (an ImageNet VID/DET tree)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dsfnet.errors import InputError

HELP = "convert annotations (CVAT for video XML, MOTChallenge gt.txt, COCO JSON) or an ImageNet VID split to " \
       "CocoVID JSON, extracting the frames of annotated video files"

FORMATS = ("cvat", "mot", "coco", "vid")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="annotation files (CVAT for video 1.1 .xml, MOTChallenge gt.txt, COCO .json; one "
                             "format per call), or with --split an ImageNet VID root holding Data/, Annotations/ "
                             "and ImageSets/")
    parser.add_argument("--out", required=True,
                        help="output CocoVID JSON file; frames extracted from video files go to <stem>_frames/ "
                             "next to it; file_name entries are relative to the JSON file's folder")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="annotation format (default: by suffix: .xml cvat, .txt mot, .json coco; vid with "
                             "--split)")
    parser.add_argument("--media", default=None, metavar="PATH",
                        help="the video file or folder of frames the annotations are of (default: the file the "
                             "annotation names, e.g. CVAT's <source>, relative to the annotation file; MOT: "
                             "SEQ/img1; COCO: the JSON's folder); with several inputs a folder holding their media")
    parser.add_argument("--classes", default=None, metavar="A,B",
                        help="comma-separated class list of the output, in label order; boxes of other classes "
                             "are left out (counted in one line); default: every class the files declare")
    parser.add_argument("--min-visibility", type=_fraction, default=None, metavar="V",
                        help="MOTChallenge: leave out boxes whose visibility (column 9) is below V, in 0..1 "
                             "(default: keep every box; those below 0.5 are marked occluded)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output JSON and frames folder (default: refuse)")
    parser.add_argument("--split", default=None,
                        help="ImageNet VID: split-file stem in ImageSets/, e.g. VID_val_videos or "
                             "VID_train_15frames")
    parser.add_argument("--image-root", default=None,
                        help="ImageNet VID: folder that file_name entries are relative to (default: the JSON "
                             "file's folder)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="ImageNet VID: log and leave out unreadable snippets instead of stopping")


def _fraction(text: str) -> float:
    """An argparse type: a number in 0..1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"--out {args.out} is a folder: give the JSON file to write, e.g. {out / 'val.json'}")
    classes = [name.strip() for name in args.classes.split(",") if name.strip()] if args.classes else None
    if args.split is not None or args.format == "vid":
        return _convert_vid(args, classes)
    from dsfnet.data.importers import read_annotations
    from dsfnet.data.importers.writer import write_imported

    videos = read_annotations([Path(path) for path in args.inputs], args.format,
                              Path(args.media) if args.media else None, args.min_visibility)
    dataset = write_imported(videos, out, classes=classes, overwrite=args.overwrite)
    frames = sum(len(video) for video in dataset.videos)
    boxes = sum(len(frame.boxes) for frame in dataset.frames())
    print(f"wrote {len(dataset.videos)} videos, {frames} frames, {boxes} boxes of {len(dataset.class_names)} "
          f"classes ({', '.join(dataset.class_names)}) to {out}")
    return 0


def _convert_vid(args: argparse.Namespace, classes) -> int:
    from dsfnet.data.class_match import keep_classes
    from dsfnet.data.cocovid import write_cocovid
    from dsfnet.data.vid import read_vid_split

    if args.split is None or len(args.inputs) != 1:
        raise InputError("an ImageNet VID tree converts with exactly one ROOT and --split")
    dataset = read_vid_split(args.inputs[0], args.split, skip_bad=args.skip_bad)
    if classes:
        dataset, left_out = keep_classes(dataset, classes, source="--classes")
        print(f"left out {left_out} boxes of classes not in --classes")
    write_cocovid(dataset, args.out, image_root=args.image_root)
    frames = sum(len(video) for video in dataset.videos)
    print(f"wrote {len(dataset.videos)} videos, {frames} frames of {args.split} to {args.out}")
    return 0
