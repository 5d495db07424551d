"""``dsfnet synth OUT``: write a synthetic dataset in the ImageNet VID layout (DESIGN §7)."""

from __future__ import annotations

import argparse

from dsfnet.data.synth import MOTION_SPEEDS

HELP = "write a synthetic video dataset in the ImageNet VID layout (frames, XML, split files)"


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 160x128, got {text!r}") from None
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder (becomes the dataset root holding Data/, Annotations/, "
                                    "ImageSets/)")
    parser.add_argument("--videos", type=int, default=40, help="train snippets (default 40)")
    parser.add_argument("--val-videos", type=int, default=10, help="val snippets (default 10)")
    parser.add_argument("--frames", type=int, default=40, help="frames per snippet (default 40)")
    parser.add_argument("--det-images", type=int, default=20, help="DET-style still images (default 20)")
    parser.add_argument("--size", type=_size, default=(160, 128), help="frame size WIDTHxHEIGHT (default 160x128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    parser.add_argument("--motion-groups", nargs="+", choices=MOTION_SPEEDS, default=list(MOTION_SPEEDS),
                        help="speeds the objects take in turn (default all three; e.g. 'slow medium' for videos "
                             "without fast objects)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing non-empty OUT whole (the new dataset is built in a temporary "
                             "sibling folder and swapped in); without it such an OUT is refused")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dsfnet.data.synth import generate_synthetic_vid

    total = args.videos + args.val_videos + args.det_images
    with tqdm(total=total, desc="synth", unit="item") as bar:
        root = generate_synthetic_vid(args.out, args.videos, args.seed, num_val_videos=args.val_videos,
                                      num_frames=args.frames, num_det_images=args.det_images, size=args.size,
                                      motion_groups=args.motion_groups,
                                      progress=lambda done, _: bar.update(done - bar.n), overwrite=args.overwrite)
    print(f"wrote {args.videos} train + {args.val_videos} val snippets and {args.det_images} still images to {root}")
    return 0
