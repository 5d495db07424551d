"""``dsfnet train``: train a model from a config (one process, or one rank under ``torchrun``).

    dsfnet train CONFIG [--opts key=value ...] [--out DIR] [--resume] [--init-from CKPT|bundled:light]
                 [--device auto|cpu|cuda]
    torchrun --nproc_per_node 8 -m dsfnet train CONFIG --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dsfnet.config import load_config

HELP = "train a DSFNet model (SGD, paper schedule, accumulation, bf16, torchrun multi-GPU, exact --resume)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML, e.g. configs/vid_r101_dsfnet.yaml or configs/synth_dsfnet.yaml")
    parser.add_argument("--opts", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. --opts train.lr=0.001 train.accumulation_steps=8 "
                             "model.variant=frame data.root=/data/ILSVRC2015")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="run folder for config.yaml, metrics.jsonl, TensorBoard files tb/, curves.png, last.pth "
                             "and final.pth (default: runs/<config name>); must not hold checkpoints unless --resume")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last.pth (same weights as an uninterrupted run "
                             "in deterministic CPU mode)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA if available), cpu or cuda; under torchrun each rank uses cuda:LOCAL_RANK")
    parser.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                        help="start from a dsfnet checkpoint's weights (a file, or bundled:light for the shipped "
                             "EfficientNet-Lite0 DSFNet); with another class list its classifier and box "
                             "regressor are re-initialised (rows of classes with the same name kept); shortcut for "
                             "--opts train.init_from=CHECKPOINT")
    parser.add_argument("--seed", type=int, default=None, help="shortcut for --opts train.seed=N")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="stop after iteration N (last.pth is written), e.g. to fit a job's time limit; "
                             "continue later with --resume")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar; log a line every train.log_interval iterations instead")


def run(args: argparse.Namespace) -> int:
    # torch-based modules load here, not when ``dsfnet --help`` builds the parser (seconds of start-up)
    from dsfnet.engine.trainer import train
    from dsfnet.inference.evaluate import periodic_validation

    overrides = list(args.opts)
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.init_from is not None:
        overrides.append(f"train.init_from={args.init_from}")
    config = load_config(args.config, overrides)
    if args.stop_after is not None and args.stop_after < 1:
        raise ValueError("--stop-after must be >= 1")
    out = Path(args.out) if args.out is not None else Path("runs") / Path(args.config).stem
    evaluation = periodic_validation(config) if config.train.eval_interval > 0 else None
    result = train(config, out, resume=args.resume, device=args.device, stop_after=args.stop_after,
                   progress=not args.no_progress, evaluation=evaluation)
    if not result.finished:
        print(f"stopped at iteration {result.iteration}; continue with: dsfnet train {args.config} --out {out} "
              "--resume")
    return 0
