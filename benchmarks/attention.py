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

With ``--fresh VARIANT``, the fusions are measured as a fine-tuning run starts them: VARIANT is built with seed
``--seed`` from each checkpoint's config and ``--opts``, and the checkpoint's weights loaded into it (so the
checkpoint may be a baseline's, whose fusions are then fresh; their value projections are zero, so only the
attention is measured, not the change):

    python benchmarks/attention.py runs/ablation_finetune/base_seed{6,7}/final.pth --fresh frame \
        --opts model.frame_fusion.identity_projections=true --data runs/ablation_finetune/synth_heldout_s2020_v150_f20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dsfnet.atomic import atomic_write_text
from dsfnet.config import VARIANTS, Config, ConfigError, with_overrides
from dsfnet.data.vid import read_vid_split
from dsfnet.diagnostics import attention_report, format_report, format_summary
from dsfnet.engine.checkpoint import config_from_checkpoint, initialise_from, load_checkpoint, load_model
from dsfnet.models.build import build_model


def fresh_model(weights: Path, variant: str, overrides: list[str], seed: int) -> tuple[torch.nn.Module, Config]:
    """``variant`` built with ``seed`` from the checkpoint's config and ``overrides``, the checkpoint's weights
    loaded into it as ``train.init_from`` does (fusions it lacks stay fresh); in eval mode."""
    config = with_overrides(config_from_checkpoint(load_checkpoint(weights)), [f"model.variant={variant}", *overrides])
    torch.manual_seed(seed)
    model = build_model(config.model)
    initialise_from(model, weights)
    return model.eval(), config


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
    parser.add_argument("--fresh", choices=VARIANTS[1:], default=None,
                        help="measure this variant's fusions as fine-tuning starts them on each checkpoint's weights "
                             "(default: the checkpoints' own trained fusions)")
    parser.add_argument("--opts", nargs="*", default=[],
                        help="config overrides key=value for --fresh "
                             "(e.g. model.frame_fusion.identity_projections=true)")
    parser.add_argument("--seed", type=int, default=0, help="seed the --fresh fusions are built with")
    args = parser.parse_args()
    if args.n < 2:
        parser.error("--n must be >= 2: fusion needs support frames")
    if args.opts and args.fresh is None:
        parser.error("--opts applies to --fresh models only (a trained checkpoint keeps its own config)")
    torch.set_num_threads(args.threads)
    dataset = read_vid_split(args.data, args.split)
    reports = {}
    for weights in args.weights:
        if args.fresh is None:
            model, config = load_model(weights)
        else:
            try:
                model, config = fresh_model(weights, args.fresh, args.opts, args.seed)
            except ConfigError as error:
                parser.error(f"--opts: {error}")
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
