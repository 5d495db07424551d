"""Training iterations of a paper config on synthetic data: the loss must stay finite and fall (GPU check, step 4).

    python benchmarks/train_check.py --device cuda --work DIR --json train_check.json     # 300 iterations, bf16

Trains ``configs/vid_r101_frame.yaml`` as shipped (n = 3 frames, one clip per iteration, bf16 autocast on CUDA)
from ``paper_scale.py``'s stand-in ImageNet weights on its synthetic 1000x600 videos (written into ``--work`` when
missing: a folder shared with ``paper_scale.py --work`` is prepared once), logging every iteration. Verdict: every
loss finite, and the mean loss of the last fifth of the iterations below that of the first fifth. Prints the
verdict, writes the losses, timings and peak memory to ``--json``, and exits with status 1 when the loss is not
finite or does not fall.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

import paper_scale

REPO = Path(__file__).resolve().parents[1]


def verdict(losses: list[float]) -> dict:
    """``{"finite", "falling", "first_mean", "last_mean"}``: the means of the first and the last fifth."""
    k = max(1, len(losses) // 5)
    first, last = statistics.fmean(losses[:k]), statistics.fmean(losses[-k:])
    finite = all(math.isfinite(loss) for loss in losses)
    return {"finite": finite, "falling": finite and last < first, "first_mean": first, "last_mean": last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train")
    parser.add_argument("--iterations", type=int, default=300, help="training iterations")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "vid_r101_frame.yaml", help="the config")
    parser.add_argument("--size", default="1000x600", help="frame size WxH of the synthetic videos")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more config overrides (e.g. data.num_workers=4)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--bn-batches", type=int, default=4, help="see paper_scale.py")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (kept; shared with paper_scale.py)")
    parser.add_argument("--json", type=Path, default=None, help="write the result to this JSON file")
    args = parser.parse_args()
    if args.iterations < 5:
        parser.error("--iterations must be >= 5 (the verdict compares the first and the last fifth)")
    args.work.mkdir(parents=True, exist_ok=True)
    args.data, args.weights = args.work / f"synth_{args.size}", args.work / "resnet101_standin.pth"
    paper_scale.prepare(args)
    shutil.rmtree(args.work / "run", ignore_errors=True)  # a new run, not a resume of paper_scale.py's
    training = paper_scale.run_phase("train", args)
    result = {"config": args.config.name, "opts": args.opts, "size": args.size, "device": args.device,
              **training, **verdict(training["losses"])}
    if args.json:
        from dsfnet.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    print(f"{args.config.name} at {args.size} on {args.device} (amp={training['amp']}): {args.iterations} iterations, "
          f"{training['s_per_iteration']:.3f} s / iteration, peak {training['peak_mib']:.0f} MiB; mean loss "
          f"{result['first_mean']:.4f} over the first fifth -> {result['last_mean']:.4f} over the last; "
          f"finite={result['finite']} falling={result['falling']}")
    sys.exit(0 if result["falling"] else 1)


if __name__ == "__main__":
    main()
