"""``configs/vid_r101_dsfnet.yaml`` at its real size: training iterations and ``cached`` inference at n = 21 (issue 11).

    python benchmarks/paper_scale.py                   # CPU (2 cores: about 10-15 minutes)
    python benchmarks/paper_scale.py --device cuda     # GPU: bf16 autocast training (train.amp)
    python benchmarks/paper_scale.py --size 160x128 --opts model.backbone.name=resnet_tiny ...   # a dry run
    python benchmarks/paper_scale.py --train-only --iterations 1 --threads 1   # the attention at initialisation

What it does, in a scratch folder (``--work``, kept for a rerun when given):

1. ``dsfnet synth --size 1000x600``: a small synthetic dataset at the paper's frame size (the configs' resize,
   shorter side 600 / longer side <= 1000, leaves it as it is).
2. A stand-in for torchvision's ImageNet ResNet-101 state dict (no download possible here): random weights whose
   BatchNorm statistics are computed on random images, so that FrozenBatchNorm normalises activations the way
   real ImageNet statistics do (with random statistics a frozen ResNet-101 explodes).
3. ``--iterations`` training iterations of the config as shipped (n = 3 frames per clip, batch of one clip,
   bf16 autocast where the trainer applies it: CUDA; fp32 on the CPU), in a subprocess of its own.
4. ``cached`` inference at n = 21 with the trained weights on a 30-frame video, in another subprocess.

It prints seconds per training iteration, ms per inference frame (steady state, after the one-off support
setup), the peak memory of each phase (CPU: peak RSS of its process; CUDA: ``torch.cuda.max_memory_allocated``)
and each fusion's attention entropy and logit spread at initialisation (the first training iteration's log), so
that a GPU user knows whether an attention starts near one-hot.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "vid_r101_dsfnet.yaml"


def stand_in_imagenet_weights(path: Path, batches: int, seed: int = 0) -> None:
    """torchvision ResNet-101 with random weights and BatchNorm running statistics of random 224 px images."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.resnet101()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over all batches
    # images as the detector feeds them: [0, 1] pixels normalised by the ImageNet mean and std
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            net((torch.rand(8, 3, 224, 224) - mean) / std)
    torch.save(net.state_dict(), path)


def peak_memory_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_phase(args: argparse.Namespace) -> dict:
    import torch

    from dsfnet.config import load_config
    from dsfnet.engine.trainer import train

    torch.set_num_threads(args.threads)
    config = load_config(args.config, [
        f"data.root={args.data}", f"model.backbone.weights={args.weights}", "data.num_workers=0",
        f"train.iterations={args.iterations}", "train.log_interval=1", "train.checkpoint_interval=100000",
        *args.opts])
    result = train(config, args.run, device=args.device, progress=False)
    records = [json.loads(line)["train"] for line in (Path(args.run) / "metrics.jsonl").read_text().splitlines()]
    times = [record["time_per_iter"] for record in records]
    # the first iteration's forward pass runs the freshly built fusions: their attention at initialisation
    attention = {name.split("/", 1)[1]: value for name, value in records[0].items() if name.startswith("attention/")}
    return {"first_iteration_s": times[0], "s_per_iteration": sum(times[1:]) / max(len(times) - 1, 1),
            "losses": [round(record["loss"], 4) for record in records], "amp": config.train.amp,
            "peak_mib": peak_memory_mib(next(result.model.parameters()).device), "attention_at_init": attention}


def infer_phase(args: argparse.Namespace) -> dict:
    import torch

    from dsfnet.engine.checkpoint import load_model
    from dsfnet.inference.predictor import VideoPredictor

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    model, config = load_model(Path(args.run) / "final.pth", device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    precision = "bf16" if device.type == "cuda" else "fp32"
    predictor = VideoPredictor(model, config, device=device, num_frames=21, mode="cached", precision=precision,
                               keep_images=False)
    frames = sorted((Path(args.data) / "Data" / "VID" / "val").glob("*/*.JPEG"))
    start, stamps = time.perf_counter(), []
    for _ in predictor.predict([str(path) for path in frames]):
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    return {"frames": len(stamps), "setup_s": stamps[0] - start, "precision": precision,
            "ms_per_frame": 1000 * (stamps[-1] - stamps[0]) / (len(stamps) - 1), "peak_mib": peak_memory_mib(device)}


def run_phase(phase: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--device", args.device, "--threads", str(args.threads),
               "--iterations", str(args.iterations), "--work", str(args.work), "--config", str(args.config),
               "--size", args.size, "--opts", *args.opts]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"paper_scale: the {phase} phase failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def prepare(args: argparse.Namespace) -> None:
    from dsfnet.data.synth import generate_synthetic_vid

    if not (Path(args.data) / "ImageSets").is_dir():
        print(f"writing the synthetic dataset ({args.size}) ...", file=sys.stderr, flush=True)
        generate_synthetic_vid(args.data, num_videos=2, seed=0, num_val_videos=1, num_frames=30,
                               num_det_images=2, size=tuple(map(int, args.size.split("x"))))
    if not Path(args.weights).is_file():
        print("computing the stand-in ImageNet weights ...", file=sys.stderr, flush=True)
        stand_in_imagenet_weights(Path(args.weights), args.bn_batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train and infer")
    parser.add_argument("--iterations", type=int, default=4, help="training iterations (the first is timed apart)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--bn-batches", type=int, default=4,
                        help="batches of 8 random 224 px images for the stand-in weights' BatchNorm statistics")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the config to train (a paper config)")
    parser.add_argument("--size", default="1000x600", help="frame size WxH of the synthetic videos")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more config overrides for the training, after this script's own")
    parser.add_argument("--train-only", action="store_true",
                        help="skip the inference phase (e.g. to read only the attention at initialisation)")
    parser.add_argument("--phase", choices=("train", "infer"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase is not None:
        work = Path(args.work)
        args.data, args.weights, args.run = work / f"synth_{args.size}", work / "resnet101_standin.pth", work / "run"
        print(json.dumps(train_phase(args) if args.phase == "train" else infer_phase(args)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        args.work = Path(args.work or scratch)
        args.work.mkdir(parents=True, exist_ok=True)
        args.data, args.weights = args.work / f"synth_{args.size}", args.work / "resnet101_standin.pth"
        prepare(args)
        run_folder = args.work / "run"
        if run_folder.exists():
            shutil.rmtree(run_folder)
        training = run_phase("train", args)
        inference = None if args.train_only else run_phase("infer", args)
    print(f"{args.config.name} {' '.join(args.opts)} at {args.size}, device={args.device}, threads={args.threads}; "
          f"train: n = 3, one clip per iteration, amp={training['amp']} (bf16 autocast on CUDA only); losses "
          f"{training['losses']}\n")
    print("| phase | setting | time | peak MiB |")
    print("|---|---|---:|---:|")
    print(f"| training | n = 3, 1 clip | {training['s_per_iteration']:.1f} s / iteration (first "
          f"{training['first_iteration_s']:.1f} s) | {training['peak_mib']:.0f} |")
    if inference is not None:
        print(f"| inference | cached, n = 21, {inference['precision']}, {inference['frames']} frames | "
              f"{inference['ms_per_frame']:.0f} ms / frame (support setup {inference['setup_s']:.1f} s) | "
              f"{inference['peak_mib']:.0f} |")
    print("\nattention at initialisation (first training iteration): " + attention_summary(training))


def attention_summary(training: dict) -> str:
    """``frame: entropy 6.01 of 8.04 nats, logit std 0.31; instance1: ...`` from the first iteration's log."""
    attention = training["attention_at_init"]
    fusions = sorted({name.rsplit("_", 2)[0] for name in attention if name.endswith("_max_entropy")})
    return "; ".join(f"{name}: entropy {attention[name + '_entropy']:.2f} of {attention[name + '_max_entropy']:.2f} "
                     f"nats, logit std {attention[name + '_logit_std']:.2f}" for name in fusions)


if __name__ == "__main__":
    main()
