"""The model a fine-tuning run starts from, saved as a checkpoint, so that its step 0 can be evaluated.

    python benchmarks/starting_point.py runs/slowmed/base_seed{0,1,2,3}/final.pth --variant frame \\
        --opts model.frame_fusion.identity_projections=true model.frame_fusion.value_init=0.5 \\
        --out runs/slowmed_start/value0.5

For each checkpoint, ``--variant`` is built with ``--seed`` from the checkpoint's config and ``--opts`` and the
checkpoint's weights are loaded into it as ``train.init_from`` does (``attention.fresh_model``): fusions it lacks
keep their fresh initialisation. It is saved, at iteration 0, as ``<out>/<the checkpoint's folder name>/final.pth``,
which every evaluating benchmark reads like a trained run's (``knockout.py`` gives its mAP and, with the fusion
knocked out, the starting checkpoint's own). With the design's zero-initialised value projections the starting
point detects as the checkpoint does; with ``model.frame_fusion.value_init`` it does not, and this measures by how
much. A starting point already saved is left as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attention import fresh_model
from dsfnet.config import VARIANTS, ConfigError
from dsfnet.engine.checkpoint import save_checkpoint, training_checkpoint


def save_starting_point(weights: Path, variant: str, overrides: list[str], seed: int, out: Path) -> Path:
    """``<out>/<weights' folder name>/final.pth``: ``variant`` started on ``weights`` (written if missing)."""
    path = out / weights.parent.name / "final.pth"
    if not path.is_file():
        model, config = fresh_model(weights, variant, overrides, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, training_checkpoint(model, config, 0))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="checkpoints to start from (e.g. base_seed*/final.pth)")
    parser.add_argument("--variant", choices=VARIANTS, required=True, help="the variant the fine-tuning run trains")
    parser.add_argument("--opts", nargs="*", default=[],
                        help="config overrides key=value of that run (e.g. model.frame_fusion.value_init=0.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed the fresh fusions are built with")
    parser.add_argument("--out", type=Path, required=True, help="folder of the starting points")
    args = parser.parse_args()
    for weights in args.weights:
        try:
            print(save_starting_point(weights, args.variant, args.opts, args.seed, args.out))
        except ConfigError as error:
            parser.error(f"--opts: {error}")


if __name__ == "__main__":
    main()
