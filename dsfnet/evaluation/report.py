"""Evaluation reports: ``report.json``, ``report.txt`` (table), ``pr_curves.png``, ``per_class_ap.png``.

Every file is written atomically (temporary file + ``os.replace``), so a crash never leaves a partial report.
"""

from __future__ import annotations

import io
import json
import math
import os
import textwrap
from pathlib import Path
from typing import Optional

import numpy as np

from dsfnet.atomic import atomic_write_bytes, atomic_write_text
from dsfnet.evaluation.motion import MOTION_GROUPS
from dsfnet.evaluation.vid_map import EvalResult
from dsfnet.jsonable import jsonable

REPORT_FILES = ("report.json", "report.txt", "pr_curves.png", "per_class_ap.png")


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}"


def format_table(result: EvalResult) -> str:
    """Plain-text table: mAP all / slow / medium / fast, then AP per class (in %)."""
    groups = [g for g in MOTION_GROUPS if g in result.motion_map]
    header = ["", "all"] + groups
    rows = [["mAP", _pct(result.map)] + [_pct(result.motion_map[g]) for g in groups]]
    for name in result.class_names:
        rows.append([name, _pct(result.per_class_ap.get(name))]
                    + [_pct(result.motion_per_class_ap[g].get(name)) for g in groups])
    rows.append(["#GT", str(sum(result.num_gt.values()))]
                + [str(sum(result.motion_num_gt[g].values())) for g in groups])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def fmt(row):
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])

    lines = [fmt(header), "-" * len(fmt(header)), fmt(rows[0]), "-" * len(fmt(header))]
    lines += [fmt(r) for r in rows[1:-1]]
    lines += ["-" * len(fmt(header)), fmt(rows[-1])]
    lines.append(f"({result.num_detections} detections on {result.num_frames} frames; AP in %, n/a = no GT)")
    return "\n".join(lines) + "\n"


def format_coco_table(coco: dict[str, Optional[float]]) -> str:
    """The COCO-protocol line of ``report.txt`` (in %): AP, AP50, AP75, AP small / medium / large."""
    names = list(coco)
    widths = [max(len(name), 5) for name in names]
    return ("COCO protocol (pycocotools; AP over IoU 0.50:0.95, 101 recall points, <= 100 detections per image)\n"
            + "  ".join(name.rjust(w) for name, w in zip(names, widths)) + "\n"
            + "  ".join(_pct(coco[name]).rjust(w) for name, w in zip(names, widths)) + "\n")


def save_figure(fig, path: Path) -> None:
    """Lay out, write atomically as PNG and close ``fig`` (closed even when writing fails)."""
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        atomic_write_bytes(path, buffer.getvalue())
    finally:
        plt.close(fig)


def plot_pr_curves(result: EvalResult, path: str | os.PathLike, title: str = "") -> None:
    """Precision–recall curve of every class with GT, one small panel each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in result.class_names if n in result.pr_curves]
    cols = max(1, min(6, math.ceil(math.sqrt(max(len(names), 1)))))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), names):
        recall, precision = result.pr_curves[name]
        ax.set_visible(True)
        if len(recall):
            ax.plot(np.concatenate(([0.0], recall)), np.concatenate(([precision[0]], precision)), lw=1.2)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{name} AP={_pct(result.per_class_ap.get(name))}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("recall", fontsize=7)
        ax.set_ylabel("precision", fontsize=7)
    # wrapped to the figure's width (~36 characters of 10 pt per 2.6-inch panel): a long title stays inside
    fig.suptitle(textwrap.fill(title or "precision-recall", width=36 * cols), fontsize=10)
    save_figure(fig, Path(path))


def plot_per_class_ap(result: EvalResult, path: str | os.PathLike, title: str = "") -> None:
    """Bar chart of AP per class (classes without GT are left out)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in result.class_names if result.per_class_ap.get(n) is not None]
    values = [100.0 * result.per_class_ap[n] for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(names) + 1.5), 4.0))
    ax.bar(range(len(names)), values, color="tab:blue")
    if result.map is not None:
        ax.axhline(100.0 * result.map, color="tab:red", ls="--", lw=1, label=f"mAP {_pct(result.map)}")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("AP (%)")
    ax.set_title(title or "AP per class", fontsize=10)
    save_figure(fig, Path(path))


def write_report(result: EvalResult, out_dir: str | os.PathLike, title: str = "", extra: Optional[dict] = None,
                 coco: Optional[dict[str, Optional[float]]] = None) -> dict[str, Path]:
    """Write ``report.json``, ``report.txt``, ``pr_curves.png`` and ``per_class_ap.png`` into ``out_dir``.

    Args:
        extra: additional JSON-serialisable fields for ``report.json`` (e.g. the detection file, the config).
        coco: COCO-protocol metrics (``dsfnet.evaluation.coco_metrics.coco_evaluate``) to report beside the
            devkit's: a table in ``report.txt`` and ``"coco"`` in ``report.json``.
    Returns:
        file name → path of each written file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in REPORT_FILES}
    # Plots first and the JSON last: report.json present means the whole report is complete.
    plot_pr_curves(result, paths["pr_curves.png"], title=title)
    plot_per_class_ap(result, paths["per_class_ap.png"], title=title)
    table = format_table(result) + (f"\n{format_coco_table(coco)}" if coco is not None else "")
    atomic_write_text(paths["report.txt"], (f"{title}\n\n" if title else "") + table)
    payload = {"title": title, **result.to_dict(), **({"coco": coco} if coco is not None else {}), **(extra or {})}
    atomic_write_text(paths["report.json"], json.dumps(jsonable(payload), indent=2) + "\n")
    return paths
