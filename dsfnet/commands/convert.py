"""``dsfnet convert ROOT --split S --out FILE.json``: an ImageNet VID split as mmtracking CocoVID JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsfnet.errors import InputError

HELP = "convert a split of an ImageNet VID/DET tree to CocoVID JSON (mmtracking format)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="dataset root holding Data/, Annotations/ and ImageSets/")
    parser.add_argument("--split", required=True,
                        help="split-file stem in ImageSets/, e.g. VID_val_videos or VID_train_15frames")
    parser.add_argument("--out", required=True, help="output JSON file")
    parser.add_argument("--image-root", default=None,
                        help="folder that file_name entries are relative to (default: the JSON file's folder)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="log and leave out unreadable snippets instead of stopping")


def run(args: argparse.Namespace) -> int:
    from dsfnet.data.cocovid import write_cocovid
    from dsfnet.data.vid import read_vid_split

    if Path(args.out).is_dir():
        raise InputError(f"--out {args.out} is a folder: give the JSON file to write, e.g. "
                         f"{Path(args.out) / 'val.json'}")
    dataset = read_vid_split(args.root, args.split, skip_bad=args.skip_bad)
    write_cocovid(dataset, args.out, image_root=args.image_root)
    frames = sum(len(video) for video in dataset.videos)
    print(f"wrote {len(dataset.videos)} videos, {frames} frames of {args.split} to {args.out}")
    return 0
