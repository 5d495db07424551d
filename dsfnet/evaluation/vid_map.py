"""ImageNet VID mAP with the official devkit rules and FGFA's motion-group mAP (DESIGN §6).

Rules (all from DESIGN §6):
- +1 pixel boxes: ``w = x2 - x1 + 1``; IoU with +1 in widths and heights.
- Per-GT threshold ``thr = min(0.5, w·h / ((w+10)·(h+10)))``; a detection matches when ``IoU >= thr``.
- Per class, detections sorted by score (descending, stable); each is matched to the not-yet-matched GT of its
  class in its frame with the highest IoU among those passing their own threshold (first GT on an exact tie, as
  the devkit's strict ``>`` loop does) → TP, else FP. Detections are neither clipped nor capped.
- AP: all-point area under the precision envelope (recall sentinels 0 and 1). mAP over classes with ≥ 1 GT.
- Motion groups: GT outside the group are ignored (not counted in the positives, still matchable; a detection
  matched to one is neither TP nor FP). An unmatched detection gets an FP weight from o_i / o_n, its highest IoU
  with the frame's ignored / in-group GT of all classes (each starting at −1).

The matching itself does not depend on the motion group (ignored GT stay matchable and are marked used), so it
is computed once and each group only re-weights TP/FP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from dsfnet.data.records import DatasetRecord
from dsfnet.evaluation.detections import Detections
from dsfnet.evaluation.motion import MOTION_GROUPS, box_iou_pairs, dataset_motion_ious, group_mask

#: Upper bound on (detection, GT) pairs held in memory at once; the work is chunked by frames.
_MAX_PAIRS_PER_CHUNK = 4_000_000


@dataclass
class EvalResult:
    """Result of :func:`evaluate`.

    Attributes:
        map: mean AP over classes with ≥ 1 GT (None when the dataset has no GT).
        per_class_ap: class name → AP, None for classes without GT.
        motion_map: group → mAP over classes with ≥ 1 in-group GT (None when no class has one); empty when motion
            evaluation was disabled.
        motion_per_class_ap: group → (class name → AP or None).
        pr_curves: class name → ``(recall [M], precision [M])`` of the raw (not enveloped) curve, score-ordered;
            only classes with GT.
        num_gt: class name → number of GT objects.
        motion_num_gt: group → (class name → number of in-group GT objects).
        motion_gt_fraction: group → fraction of all GT objects whose motion IoU lies in the group.
        num_detections, num_frames: sizes of the evaluated input.
    """

    class_names: tuple[str, ...]
    map: Optional[float]
    per_class_ap: dict[str, Optional[float]]
    num_gt: dict[str, int]
    pr_curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    motion_map: dict[str, Optional[float]] = field(default_factory=dict)
    motion_per_class_ap: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)
    motion_num_gt: dict[str, dict[str, int]] = field(default_factory=dict)
    motion_gt_fraction: dict[str, float] = field(default_factory=dict)
    num_detections: int = 0
    num_frames: int = 0

    def to_dict(self) -> dict:
        """JSON-serialisable summary (PR curves left out)."""
        return {
            "map": self.map,
            "motion_map": dict(self.motion_map),
            "per_class_ap": dict(self.per_class_ap),
            "motion_per_class_ap": {g: dict(v) for g, v in self.motion_per_class_ap.items()},
            "num_gt": dict(self.num_gt),
            "motion_num_gt": {g: dict(v) for g, v in self.motion_num_gt.items()},
            "motion_gt_fraction": dict(self.motion_gt_fraction),
            "num_detections": self.num_detections,
            "num_frames": self.num_frames,
            "class_names": list(self.class_names),
        }


# ------------------------------------------------------------------------------------------------ primitives


def iou_thresholds(boxes: np.ndarray) -> np.ndarray:
    """Per-GT threshold ``min(0.5, w·h / ((w+10)·(h+10)))`` with +1 widths. ``boxes [k, 4]`` → ``[k]``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    return np.minimum(0.5, (w * h) / ((w + 10.0) * (h + 10.0)))


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point AP with the precision envelope (VOC 2010+ / VID devkit)."""
    mrec = np.concatenate(([0.0], np.asarray(recall, np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# ------------------------------------------------------------------------------------------------ evaluation


@dataclass
class _GroundTruth:
    boxes: np.ndarray       # float64 [G, 4]
    labels: np.ndarray      # int64 [G]
    thr: np.ndarray         # float64 [G]
    frame: np.ndarray       # int64 [G] split position
    start: np.ndarray       # int64 [F + 1] CSR offsets of each frame's GT
    motion: Optional[np.ndarray]  # float64 [G]


def _gather_gt(dataset: DatasetRecord, motion: bool) -> _GroundTruth:
    frames = dataset.frames()
    counts = np.array([len(f.boxes) for f in frames], np.int64)
    start = np.concatenate(([0], np.cumsum(counts)))
    if counts.sum():
        boxes = np.concatenate([np.asarray(f.boxes, np.float64).reshape(-1, 4) for f in frames])
        labels = np.concatenate([np.asarray(f.labels, np.int64).reshape(-1) for f in frames])
    else:
        boxes, labels = np.zeros((0, 4)), np.zeros((0,), np.int64)
    num_classes = len(dataset.class_names)
    if len(labels) and (labels.min() < 1 or labels.max() > num_classes):
        raise ValueError(f"ground truth has labels outside 1..{num_classes}")
    ious = None
    if motion:
        per_frame = dataset_motion_ious(dataset)
        ious = np.concatenate(per_frame) if per_frame else np.zeros((0,))
    return _GroundTruth(boxes, labels, iou_thresholds(boxes), np.repeat(np.arange(len(frames)), counts), start, ious)


def _match(gt: _GroundTruth, det: Detections, rank: np.ndarray, groups: dict[str, np.ndarray]):
    """Greedy devkit matching, and per-group o_i / o_n of every detection.

    Args:
        rank: ``[N]`` position of each detection in the global score order (descending, stable).
        groups: group name → ``bool [G]`` in-group mask of the GT.
    Returns:
        matched ``int64 [N]`` (global GT index or −1), and group → ``(o_i [N], o_n [N])``.
    """
    n = len(det)
    matched = np.full(n, -1, np.int64)
    overlaps = {g: (np.full(n, -1.0), np.full(n, -1.0)) for g in groups}
    if n == 0 or len(gt.labels) == 0:
        return matched, overlaps
    order = np.argsort(det.frame_ids, kind="stable")          # detections grouped by frame
    fids = det.frame_ids[order]
    ng_per_det = gt.start[fids + 1] - gt.start[fids]
    cum = np.concatenate(([0], np.cumsum(ng_per_det)))
    used = np.zeros(len(gt.labels), bool)
    bounds = _chunk_bounds(fids, cum)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        reps = ng_per_det[lo:hi]
        if reps.sum() == 0:
            continue
        idx = order[lo:hi]
        pair_det = np.repeat(idx, reps)                                     # global detection index
        offset = np.arange(int(reps.sum())) - np.repeat(cum[lo:hi] - cum[lo], reps)
        pair_gt = np.repeat(gt.start[fids[lo:hi]], reps) + offset           # global GT index
        iou = box_iou_pairs(det.boxes[pair_det], gt.boxes[pair_gt])
        _record_overlaps(overlaps, groups, idx, reps, pair_gt, iou)
        # Candidate pairs: same class and IoU >= that GT's threshold.
        cand = (det.labels[pair_det] == gt.labels[pair_gt]) & (iou >= gt.thr[pair_gt])
        if cand.any():
            _assign_greedily(pair_det[cand], pair_gt[cand], iou[cand], rank, used, matched)
    return matched, overlaps


def _chunk_bounds(fids: np.ndarray, cum: np.ndarray) -> list[int]:
    """Chunk boundaries in frame order holding about ``_MAX_PAIRS_PER_CHUNK`` pairs each, never splitting a frame
    (greedy matching is per frame); ``fids`` are the sorted frames, ``cum`` the cumulative pair counts."""
    n = len(fids)
    bounds = [0]
    while bounds[-1] < n:
        lo = bounds[-1]
        hi = int(np.searchsorted(cum, cum[lo] + _MAX_PAIRS_PER_CHUNK, side="right")) - 1
        hi = max(hi, lo + 1)
        hi = int(np.searchsorted(fids, fids[hi - 1], side="right")) if hi < n else n
        bounds.append(hi)
    return bounds


def _record_overlaps(overlaps: dict, groups: dict[str, np.ndarray], idx: np.ndarray, reps: np.ndarray,
                     pair_gt: np.ndarray, iou: np.ndarray) -> None:
    """o_i / o_n of the chunk's detections ``idx`` over the GT of all classes of their frame (pairs are
    contiguous per detection, ``reps`` per detection)."""
    seg = np.concatenate(([0], np.cumsum(reps)))[:-1][reps > 0]
    seg_det = idx[reps > 0]
    for g, in_group in groups.items():
        ig = in_group[pair_gt]
        overlaps[g][0][seg_det] = np.maximum.reduceat(np.where(ig, -1.0, iou), seg)
        overlaps[g][1][seg_det] = np.maximum.reduceat(np.where(ig, iou, -1.0), seg)


def _assign_greedily(c_det: np.ndarray, c_gt: np.ndarray, c_iou: np.ndarray, rank: np.ndarray, used: np.ndarray,
                     matched: np.ndarray) -> None:
    """Match candidate pairs in score order, then highest IoU, then first GT (the devkit keeps the first GT on
    an exact IoU tie); each detection and each GT at most once."""
    srt = np.lexsort((c_gt, -c_iou, rank[c_det]))
    last = -1
    for d, g in zip(c_det[srt].tolist(), c_gt[srt].tolist()):
        if d == last or used[g]:
            continue
        used[g] = True
        matched[d] = g
        last = d


def _class_curves(labels: np.ndarray, rank_order: np.ndarray, tp: np.ndarray, fp: np.ndarray,
                  npos: np.ndarray, num_classes: int):
    """AP and (recall, precision) per class; ``rank_order`` lists detections in global score order."""
    aps: list[Optional[float]] = []
    curves: list[Optional[tuple[np.ndarray, np.ndarray]]] = []
    sorted_labels = labels[rank_order]
    for c in range(1, num_classes + 1):
        if npos[c] <= 0:
            aps.append(None)
            curves.append(None)
            continue
        sel = rank_order[sorted_labels == c]
        ctp = np.cumsum(tp[sel])
        cfp = np.cumsum(fp[sel])
        recall = ctp / npos[c]
        precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        aps.append(average_precision(recall, precision))
        curves.append((recall, precision))
    return aps, curves


def evaluate(dataset: DatasetRecord, detections: Detections, motion: bool = True,
             extra_groups: Optional[dict[str, np.ndarray]] = None) -> EvalResult:
    """Evaluate ``detections`` against ``dataset`` with the ImageNet VID protocol (DESIGN §6).

    Args:
        dataset: ground truth; ``detections.frame_ids`` index ``dataset.frames()``.
        detections: detections of the split (any order).
        motion: also compute the motion-group (slow / medium / fast) AP.
        extra_groups: more GT groups evaluated with the same ignore rules as the motion groups, each a
            ``bool [G]`` mask over all GT objects in split order (e.g. degraded / clean objects); their mAP
            is reported beside the motion groups in ``motion_map`` under the given names.
    """
    names = tuple(dataset.class_names)
    num_classes = len(names)
    gt = _gather_gt(dataset, motion)
    num_frames = len(gt.start) - 1
    _check_detections(detections, num_frames, num_classes)
    # Global score order, descending and stable (equal scores keep input order).
    rank_order = np.argsort(-detections.scores, kind="stable")
    rank = np.empty(len(detections), np.int64)
    rank[rank_order] = np.arange(len(detections))
    groups = _groups(gt, motion, extra_groups)
    matched, overlaps = _match(gt, detections, rank, groups)
    is_tp = matched >= 0
    npos = np.bincount(gt.labels, minlength=num_classes + 1)
    aps, curves = _class_curves(detections.labels, rank_order, is_tp.astype(np.float64),
                                (~is_tp).astype(np.float64), npos, num_classes)
    result = EvalResult(
        class_names=names,
        map=_mean(aps),
        per_class_ap=dict(zip(names, aps)),
        num_gt={name: int(npos[i + 1]) for i, name in enumerate(names)},
        pr_curves={name: curve for name, curve in zip(names, curves) if curve is not None},
        num_detections=len(detections),
        num_frames=num_frames,
    )
    for g, in_group in groups.items():
        tp, fp = _group_weights(gt, detections, in_group, matched, overlaps[g])
        group_npos = np.bincount(gt.labels[in_group], minlength=num_classes + 1)
        g_aps, _ = _class_curves(detections.labels, rank_order, tp, fp, group_npos, num_classes)
        result.motion_map[g] = _mean(g_aps)
        result.motion_per_class_ap[g] = dict(zip(names, g_aps))
        result.motion_num_gt[g] = {name: int(group_npos[i + 1]) for i, name in enumerate(names)}
        result.motion_gt_fraction[g] = float(in_group.sum()) / len(gt.labels) if len(gt.labels) else 0.0
    return result


@dataclass
class MatchTable:
    """Every detection's TP / FP weight in one evaluation, in global score order, with the GT it is scored
    against: enough to re-score a weighted subset of the frames (e.g. a bootstrap over videos) without matching
    again. A frame drawn twice counts its detections and its GT twice."""

    labels: np.ndarray      # int64 [N] class of each detection, in descending score order
    frames: np.ndarray      # int64 [N] split position of each detection's frame
    tp: np.ndarray          # float64 [N] true-positive weight
    fp: np.ndarray          # float64 [N] false-positive weight (0 for a detection of an ignored GT)
    gt_labels: np.ndarray   # int64 [G'] classes of the GT in the evaluated group
    gt_frames: np.ndarray   # int64 [G'] their frames
    num_classes: int

    def mean_ap(self, frame_weights: Optional[np.ndarray] = None) -> Optional[float]:
        """mAP with each frame counted ``frame_weights[frame]`` times (``None``: once; equals :func:`evaluate`'s
        ``map`` or group mAP); classes without GT weight are left out, as in :func:`evaluate`.

        For all objects this equals evaluating the split with its frames repeated. For a group it is close but
        not equal: a detection in a frame without GT is weighted by the whole split's in-group fraction (DESIGN
        §6), which the table keeps from the unweighted split."""
        det_weight = 1.0 if frame_weights is None else frame_weights[self.frames]
        gt_weight = None if frame_weights is None else frame_weights[self.gt_frames]
        npos = np.bincount(self.gt_labels, weights=gt_weight, minlength=self.num_classes + 1)
        order = np.arange(len(self.labels))
        aps, _ = _class_curves(self.labels, order, self.tp * det_weight, self.fp * det_weight, npos, self.num_classes)
        return _mean(aps)


def match_table(dataset: DatasetRecord, detections: Detections, group: Optional[str] = None,
                extra_groups: Optional[dict[str, np.ndarray]] = None) -> MatchTable:
    """The :class:`MatchTable` of :func:`evaluate` for all objects (``group=None``), a motion group
    (``slow`` / ``medium`` / ``fast``) or one of ``extra_groups``."""
    gt = _gather_gt(dataset, group in MOTION_GROUPS)
    _check_detections(detections, len(gt.start) - 1, len(dataset.class_names))
    rank_order = np.argsort(-detections.scores, kind="stable")
    rank = np.empty(len(detections), np.int64)
    rank[rank_order] = np.arange(len(detections))
    groups = {} if group is None else {group: _groups(gt, group in MOTION_GROUPS, extra_groups)[group]}
    matched, overlaps = _match(gt, detections, rank, groups)
    if group is None:
        in_group = np.ones(len(gt.labels), bool)
        tp = (matched >= 0).astype(np.float64)
        fp = 1.0 - tp
    else:
        in_group = groups[group]
        tp, fp = _group_weights(gt, detections, in_group, matched, overlaps[group])
    return MatchTable(detections.labels[rank_order], detections.frame_ids[rank_order], tp[rank_order],
                      fp[rank_order], gt.labels[in_group], gt.frame[in_group], len(dataset.class_names))


def _check_detections(detections: Detections, num_frames: int, num_classes: int) -> None:
    if len(detections):
        if detections.frame_ids.min() < 0 or detections.frame_ids.max() >= num_frames:
            raise ValueError(f"detections refer to frame positions outside 0..{num_frames - 1}")
        if detections.labels.min() < 1 or detections.labels.max() > num_classes:
            raise ValueError(f"detections have labels outside 1..{num_classes}")


def _groups(gt: _GroundTruth, motion: bool, extra_groups: Optional[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """GT group name → ``bool [G]`` in-group mask: the motion groups (when ``motion``), then the extra ones."""
    groups = {g: group_mask(gt.motion, g) for g in MOTION_GROUPS} if motion else {}
    for name, mask in (extra_groups or {}).items():
        if mask.shape != gt.labels.shape:
            raise ValueError(f"group '{name}' has {mask.shape} entries for {len(gt.labels)} ground-truth objects")
        groups[name] = mask.astype(bool)
    return groups


def _group_weights(gt: _GroundTruth, detections: Detections, in_group: np.ndarray, matched: np.ndarray,
                   overlaps: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """TP and FP weights ``[N]`` of every detection for one GT group (DESIGN §6)."""
    num_frames = len(gt.start) - 1
    total_gt = len(gt.labels)
    has_gt = gt.start[1:] > gt.start[:-1]
    # Weight of a tie in a frame with no GT: the fraction of all GT objects in the group (DESIGN §6).
    empty_weight = float(in_group.sum()) / total_gt if total_gt else 0.0
    # Weight of a tie in a frame with GT: "the fraction of the frame's GT that are ignored" (DESIGN §6,
    # literally; FGFA's vid_eval_motion does the same).
    ignored_per_frame = (np.add.reduceat((~in_group).astype(np.int64), gt.start[:-1][has_gt])
                         if total_gt else np.zeros(0))
    ignored_fraction = np.zeros(num_frames)
    ignored_fraction[has_gt] = ignored_per_frame / (gt.start[1:] - gt.start[:-1])[has_gt]
    o_i, o_n = overlaps
    tie_weight = np.where(has_gt[detections.frame_ids], ignored_fraction[detections.frame_ids], empty_weight)
    fp_weight = np.where(o_n > o_i, 1.0, np.where(o_i > o_n, 0.0, tie_weight))
    is_tp = matched >= 0
    tp = np.zeros(len(detections))
    tp[is_tp] = in_group[matched[is_tp]].astype(np.float64)
    fp = np.where(is_tp, 0.0, fp_weight)    # matched to an ignored GT: neither TP nor FP
    return tp, fp
