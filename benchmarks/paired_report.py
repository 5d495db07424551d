"""The paired analysis of the finetune ablation (ablation.py --protocol finetune): per-seed gains over the
baseline, their means with bootstrap intervals over seeds and held-out videos, the four one-sided paired tests
with Holm's correction, the motion groups, the different-video control and the attention during training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from paired_stats import bootstrap_intervals, holm, paired_t_test, seeds_needed

#: the paper's ordering (Table 1) as one-sided hypotheses: name -> (variant, variants it must beat)
HYPOTHESES = {
    "frame > baseline": ("frame", ("baseline",)),
    "instance > baseline": ("instance", ("baseline",)),
    "dsfnet > baseline": ("dsfnet", ("baseline",)),
    "dsfnet > max(frame, instance)": ("dsfnet", ("frame", "instance")),
}
#: the control's gain over the baseline: the fused variant's support frames taken from another video
CONTROL = "dsfnet (other video's support) > baseline"


def paired_gain(values: dict[str, float], variant: str, rivals: Sequence[str]) -> float:
    """``variant``'s score minus the best of ``rivals`` (one seed)."""
    return values[variant] - max(values[rival] for rival in rivals)


def per_seed_gains(results: dict[str, list[dict]], column: str = "all") -> dict[str, list[float]]:
    """Hypothesis → gain of each seed (mAP points) on ``column``, for the hypotheses whose variants ran."""
    gains = {}
    seeds = len(results.get("baseline", []))
    for name, (variant, rivals) in {**HYPOTHESES, CONTROL: ("dsfnet_control", ("baseline",))}.items():
        if all(len(results.get(v, [])) == seeds for v in (variant, *rivals)) and seeds:
            gains[name] = [100 * paired_gain({v: results[v][i][column] for v in (variant, *rivals)}, variant, rivals)
                           for i in range(seeds)]
    return gains


def resampled_gains(tables: dict[str, list], frame_video: np.ndarray):
    """``gains_of(seed_counts, video_counts)`` for :func:`bootstrap_intervals`: every hypothesis's mean gain
    (mAP points) with the runs re-scored on the drawn videos (``tables``: variant → MatchTable per seed)."""

    def gains_of(seed_counts: np.ndarray, video_counts: np.ndarray) -> dict[str, float]:
        frame_weights = video_counts[frame_video].astype(np.float64)
        drawn = np.flatnonzero(seed_counts)
        scores = {variant: {s: runs[s].mean_ap(frame_weights) for s in drawn} for variant, runs in tables.items()}
        gains = {}
        for name, (variant, rivals) in {**HYPOTHESES, CONTROL: ("dsfnet_control", ("baseline",))}.items():
            if variant in scores and all(rival in scores for rival in rivals):
                per_seed = [paired_gain({v: scores[v][s] for v in (variant, *rivals)}, variant, rivals) for s in drawn]
                gains[name] = 100 * float(np.average(per_seed, weights=seed_counts[drawn]))
        return gains

    return gains_of


def analyse(results: dict[str, list[dict]], tables: dict[str, list], frame_video: np.ndarray, draws: int) -> dict:
    """Everything the README reports, as a JSON-able dict (see :func:`markdown`)."""
    gains = per_seed_gains(results)
    tests = {name: paired_t_test(values) for name, values in gains.items() if name in HYPOTHESES}
    corrected = holm({name: test["p"] for name, test in tests.items()})
    seeds = len(results["baseline"])
    intervals = bootstrap_intervals(resampled_gains(tables, frame_video), seeds, int(frame_video.max()) + 1,
                                    draws=draws) if draws else {}
    report = {"seeds": seeds, "per_seed_gains": gains, "intervals": intervals, "draws": draws, "tests": {}}
    for name, test in tests.items():
        report["tests"][name] = {**test, **corrected[name],
                                 "seeds_for_80%_power": seeds_needed(test["mean"], test["sd"])}
    report["motion_gains"] = {column: per_seed_gains(results, column) for column in ("slow", "medium", "fast")}
    if CONTROL in gains and "dsfnet > baseline" in gains:
        report["control_removes"] = control_removes(gains)
    return report


def control_removes(gains: dict[str, list[float]]) -> float | None:
    """The share of DSFNet's mean gain that the different-video control removes (``gains``: per-seed gains with
    ``dsfnet > baseline`` and the control on the same seeds); None where DSFNet gained nothing."""
    fused, control = np.mean(gains["dsfnet > baseline"]), np.mean(gains[CONTROL])
    return float(1 - control / fused) if fused > 0 else None


def _interval(report: dict, name: str) -> str:
    low_high = report["intervals"].get(name)
    return f"[{low_high[0]:+.1f}, {low_high[1]:+.1f}]" if low_high else "–"


def markdown(report: dict, title: str | None = None) -> str:
    """The paired gains, intervals and tests as the README's tables (``title``: the first line, by default the
    bootstrap's)."""
    title = title or (f"paired gains over {report['seeds']} seeds (mAP points, all objects; 95 % interval: bootstrap "
                      f"over seeds and held-out videos, {report['draws']} draws)")
    lines = [title, "",
             "| hypothesis | per-seed gains | mean | 95 % interval | one-sided p | Holm p | significant |",
             "|---|---|---:|---|---:|---:|---|"]
    for name, values in report["per_seed_gains"].items():
        test = report["tests"].get(name)
        cells = [f"{test['p']:.3f}", f"{test['p_holm']:.3f}", "yes" if test["significant"] else "no"] if test \
            else ["–", "–", "–"]
        lines.append(f"| {name} | {', '.join(f'{g:+.1f}' for g in values)} | {np.mean(values):+.1f} | "
                     f"{_interval(report, name)} | " + " | ".join(cells) + " |")
    lines += ["", "| gain by motion (mean over seeds) | slow | medium | fast |", "|---|---:|---:|---:|"]
    for name in report["per_seed_gains"]:
        row = [report["motion_gains"][c].get(name) for c in ("slow", "medium", "fast")]
        lines.append(f"| {name} | " + " | ".join(f"{np.mean(v):+.1f}" if v else "–" for v in row) + " |")
    if report.get("control_removes") is not None:
        lines += ["", f"the different-video control removes {100 * report['control_removes']:.0f} % of DSFNet's gain"]
    return "\n".join(lines)


def training_attention(run_dirs: dict[str, list[Path]]) -> dict[str, dict[str, float]]:
    """Variant → the attention statistics of the last logged training step (``metrics.jsonl``), mean over
    seeds."""
    summary = {}
    for variant, folders in run_dirs.items():
        values: dict[str, list[float]] = {}
        for folder in folders:
            lines = (folder / "metrics.jsonl").read_text().splitlines() if (folder / "metrics.jsonl").is_file() else []
            last = next((json.loads(line)["train"] for line in reversed(lines) if '"attention/' in line), {})
            for key, value in last.items():
                if key.startswith("attention/"):
                    values.setdefault(key, []).append(value)
        if values:
            summary[variant] = {key: float(np.mean(v)) for key, v in values.items()}
    return summary
