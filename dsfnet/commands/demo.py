"""``dsfnet demo``: see DSFNet work in minutes, with no data and no downloads."""

from __future__ import annotations

import argparse

from dsfnet.data.synth import HELD_OUT_SEED

from dsfnet.bundled import BUNDLED, DEFAULT_BACKBONE

# the bundled backbones, the default first
BACKBONES = (DEFAULT_BACKBONE, *sorted(set(BUNDLED) - {DEFAULT_BACKBONE}))

HELP = ("run a bundled DSFNet and baseline on freshly generated held-out synthetic videos; print mAP "
        "(all / slow / medium / fast) and speed, write detections, reports and a side-by-side video")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--device", default="cpu", help="torch device to run on (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--videos", type=int, default=30,
                        help="held-out synthetic videos to generate (30 x 40 frames = the ablation's held-out set)")
    parser.add_argument("--frames", type=int, default=40, help="frames per generated video")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED,
                        help="seed of the generated videos (the bundled models were trained on seed 0)")
    parser.add_argument("--n", type=int, default=None,
                        help="frames per clip (test frame + n-1 support frames); default: the checkpoint's config")
    parser.add_argument("--backbone", choices=BACKBONES, default=BACKBONES[0],
                        help="bundled pair to run: light (EfficientNet-Lite0 from ImageNet weights, fine-tuned) or "
                             "tiny (a tiny ResNet trained from scratch)")
    parser.add_argument("--no-video", action="store_true", help="skip the side-by-side annotated video")
    parser.add_argument("--dsfnet-weights", default=None, help="use this DSFNet checkpoint instead of the bundled one")
    parser.add_argument("--baseline-weights", default=None,
                        help="use this baseline checkpoint instead of the bundled one")


def run(args: argparse.Namespace) -> int:
    from dsfnet.demo import run_demo  # torch-based: loaded here, not when ``dsfnet --help`` builds the parser

    if args.videos < 1 or args.frames < 1:
        raise ValueError("--videos and --frames must be >= 1")
    weights = {name: path for name, path in (("dsfnet", args.dsfnet_weights), ("baseline", args.baseline_weights))
               if path is not None}
    run_demo(args.out, device=args.device, num_videos=args.videos, num_frames=args.frames, seed=args.seed,
             clip_frames=args.n, write_video=not args.no_video, weights=weights, backbone=args.backbone)
    return 0
