"""``curves.png`` of a run: the losses and the learning rate over iterations, and validation mAP where it ran,
drawn from ``metrics.jsonl`` when training ends (also when it is stopped by SIGTERM or Ctrl-C)."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: logged values that are not losses (drawn apart, or not at all)
_NOT_LOSSES = ("lr", "epoch", "time_per_iter", "data_time", "max_memory_mb", "grad_norm")


def read_metrics(path: str | os.PathLike) -> tuple[dict[str, list], dict[str, list]]:
    """``(train, eval)`` series of a ``metrics.jsonl``: name -> ``[(iteration, value), ...]``."""
    series: tuple[dict, dict] = ({}, {})
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        for index, prefix in enumerate(("train", "eval")):
            for name, value in (record.get(prefix) or {}).items():
                if isinstance(value, (int, float)) and value is not None:
                    series[index].setdefault(name, []).append((record["iteration"], value))
    return series


def plot_curves(metrics: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Draw ``metrics.jsonl`` into ``path`` (PNG, atomically): losses (log scale), learning rate, validation mAP
    (percent). Returns ``False`` (nothing written) when nothing was logged yet."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsfnet.evaluation.report import save_figure

    if not Path(metrics).is_file():
        return False
    train, evaluation = read_metrics(metrics)
    losses = {name: points for name, points in train.items()
              if name not in _NOT_LOSSES and (name == "loss" or name.startswith("loss"))}
    if not losses:
        return False
    panels = 3 if "mAP" in evaluation else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    for name, points in sorted(losses.items()):
        axes[0, 0].plot(*zip(*points), lw=2.0 if name == "loss" else 1.0, label=name)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_title("training losses", fontsize=10)
    axes[0, 0].legend(fontsize=6)
    axes[0, 1].plot(*zip(*train.get("lr", [(0, 0.0)])), color="tab:green")
    axes[0, 1].set_title("learning rate", fontsize=10)
    if panels == 3:
        iterations, values = zip(*evaluation["mAP"])
        axes[0, 2].plot(iterations, [100 * value for value in values], marker="o", color="tab:red")
        axes[0, 2].set_title("validation mAP (%)", fontsize=10)
    for ax in axes.ravel():
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    save_figure(fig, Path(path))
    return True

