"""What the fusions of trained checkpoints attend to, on labelled held-out videos (``dsfnet.diagnostics``).

    python benchmarks/attention.py runs/ablation_finetune/{frame,instance,dsfnet}_seed7/final.pth \\
        --data runs/ablation_finetune/synth_heldout_s2020_v150_f20 --out runs/ablation_finetune/attention_seed7.json

For each checkpoint: per instance-fusion stage and head, the share of a ground-truth object's proposals'
attention that lands on proposals of the same object in other frames, against uniform attention's share; and
the entropy, own-frame share and same-channel share of the frame-level attention, against uniform attention's;
for each fusion, how much it changes the features it enhances. With several checkpoints, a last table compares
them (mean ± sd per variant).
Runs the ``exact`` path on clips of ``--n`` frames (the test frame and its ``support_frames``), ``--frames-per-video``
evenly spaced test frames per video.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dsfnet.atomic import atomic_write_text
from dsfnet.data.vid import read_vid_split
from dsfnet.diagnostics import attention_report, format_report, format_summary
from dsfnet.engine.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="checkpoints (final.pth) of frame / instance / dsfnet")
    parser.add_argument("--data", type=Path, default=Path("runs/ablation/synth_heldout"),
                        help="VID-layout root of labelled videos (default: the ablation's held-out set)")
    parser.add_argument("--split", default="VID_val_videos", help="ImageSets split of --data")
    parser.add_argument("--n", type=int, default=5, help="frames per clip (test frame + n-1 support frames)")
    parser.add_argument("--frames-per-video", type=int, default=4, help="evenly spaced test frames per video")
    parser.add_argument("--videos", type=int, default=0, help="the first videos only (0 = all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="also write the reports as JSON to this file")
    args = parser.parse_args()
    if args.n < 2:
        parser.error("--n must be >= 2: fusion needs support frames")
    torch.set_num_threads(args.threads)
    dataset = read_vid_split(args.data, args.split)
    reports = {}
    for weights in args.weights:
        model, config = load_model(weights)
        if model.frame_fusion is None and model.instance_fusions is None:
            parser.error(f"{weights} is a baseline checkpoint: it has no fusion to inspect")
        reports[str(weights)] = {"variant": config.model.variant,
                                 **attention_report(model, dataset, config, args.n, args.frames_per_video, args.videos,
                                                    progress=True)}
        print(f"\n{weights} ({config.model.variant}, n={args.n}, {reports[str(weights)]['clips']} clips)\n")
        print(format_report(reports[str(weights)]))
    if len(reports) > 1:
        print("\n" + format_summary(reports))
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
