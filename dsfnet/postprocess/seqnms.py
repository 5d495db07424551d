"""Seq-NMS (Han et al., "Seq-NMS for Video Object Detection", 2016): offline re-scoring of a video's detections.

The algorithm, per class (boxes of different classes never interact):

1. **Link**: a box of frame ``t`` and a box of frame ``t + 1`` are linked when their IoU is above ``link_iou``.
2. **Select**: the sequence (a path of linked boxes over consecutive frames) with the largest sum of scores, by
   dynamic programming over the frames: ``best(b) = score(b) + max(0, max best(a))`` over the linked boxes ``a``
   of the previous frame that are still in the graph; the sequence ends at the box of largest ``best`` and is
   read back through the arg-max pointers.
3. **Rescore**: every box of the sequence gets the sequence's average (``avg``) or maximum (``max``) score.
4. **Suppress**: in every frame of the sequence, the boxes whose IoU with the sequence's box is at least
   ``nms_iou`` are removed; the sequence's own boxes leave the graph with their new scores.
5. Repeat 2-4 until the graph is empty.

Every box ends up either in a sequence (a box linked to nothing is a one-frame sequence and keeps its score) or
suppressed. It needs the whole video before the first frame is final, so it is offline only.

Implementation: the boxes of all classes of a video form one graph whose links join boxes of the same class (so
the classes stay independent); the links are an edge list, and the dynamic programme is one grouped max / arg-max
over the edges into a frame. Pairs of boxes are compared in blocks of at most ``PAIR_BLOCK`` pairs and only the
links (and overlaps) kept, so that memory follows the links, not the square of the boxes per frame. Each round takes the best sequence of every class at once (a class's
sequences are still taken in the paper's order, one at a time, as no other class can change them). After a
round, the programme is re-run only in the frames of boxes that were linked to a removed box, and in the frame
after any frame whose values changed: nothing else reads a changed value. Boxes linked to nothing that overlap
no box of their class are one-frame sequences in any order, and are kept as they are before the first round.

IoU here is continuous (area ``(x2 - x1) * (y2 - y1)``), as in the detector's own NMS (torchvision).
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass

import numpy as np

from dsfnet.errors import InputError
from dsfnet.postprocess.apply import postprocess_dataset, postprocess_frame_results, postprocess_stream
from dsfnet.postprocess.base import PostProcessor
from dsfnet.registry import POSTPROCESSORS

RESCORE_METHODS = ("avg", "max")
#: candidate box pairs compared at once (about 100 MB of temporaries): bounds memory whatever the boxes per frame
PAIR_BLOCK = 1 << 21


@dataclass(frozen=True)
class SeqNMSParams:
    """Seq-NMS settings (defaults: the paper's linking IoU 0.5 and suppression IoU 0.3, average rescoring).

    Attributes:
        link_iou: boxes of adjacent frames are linked when IoU > ``link_iou``.
        nms_iou: a box is suppressed by a sequence's box of its frame when IoU >= ``nms_iou``.
        rescore: ``avg`` (the sequence's mean score) or ``max``.
    """

    link_iou: float = 0.5
    nms_iou: float = 0.3
    rescore: str = "avg"

    def __post_init__(self) -> None:
        for name, option in (("link_iou", "--seqnms-link-iou"), ("nms_iou", "--seqnms-nms-iou")):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"Seq-NMS {name} ({option}) must be in [0, 1], got {value}")
        if self.rescore not in RESCORE_METHODS:
            raise InputError(f"Seq-NMS rescore (--seqnms-rescore) must be one of {', '.join(RESCORE_METHODS)}, "
                             f"got {self.rescore!r}")


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Continuous area ``(x2 - x1) * (y2 - y1)`` of ``boxes [..., 4]`` (0 for inverted boxes) → ``[...]``."""
    return np.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * np.maximum(boxes[..., 3] - boxes[..., 1], 0.0)


def box_iou(a: np.ndarray, b: np.ndarray, area_a: np.ndarray | None = None, area_b: np.ndarray | None = None
            ) -> np.ndarray:
    """IoU of boxes ``a [..., 4]`` and ``b [..., 4]`` (x1, y1, x2, y2), broadcast against each other (``a[:, None]``
    and ``b[None]`` give the ``[n, m]`` matrix). Continuous areas (``box_area``, pass them when known); 0 where
    the union is empty."""
    inter = (np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
             * np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0))
    union = (box_area(a) if area_a is None else area_a) + (box_area(b) if area_b is None else area_b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, e) for s, e in zip(starts, ends)])`` without the loop."""
    counts = ends - starts
    return np.repeat(ends - np.cumsum(counts), counts) + np.arange(int(counts.sum()))


class _VideoGraph:
    """The boxes of one video in frame order, their links and the dynamic programme over them.

    Boxes are stored flat (``[N]`` arrays) with ``starts [K + 1]`` the offsets of the K frames that have boxes.
    ``own [N]`` is a box's score while it is in the graph and ``-inf`` after; ``best [N]`` the largest score sum
    of a sequence ending at the box (``-inf`` out of the graph) and ``back [N]`` the flat index of its predecessor
    in that sequence (``-1``: the sequence starts there). The links are kept twice: as an edge list
    ``(link_from [E], link_to [E])`` sorted by source with ``out_start [N + 1]`` its offsets, and sorted by target
    (then source) as ``(in_from [E], in_to [E])`` with ``in_start [N + 1]``.
    """

    def __init__(self, frames: np.ndarray, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                 params: SeqNMSParams):
        self.boxes, self.labels, self.scores, self.params = boxes, labels, scores, params
        self.area = box_area(boxes)
        frame_values, self.starts = np.unique(frames, return_index=True)
        self.starts = np.append(self.starts, len(frames))
        self.segment = np.repeat(np.arange(len(frame_values)), np.diff(self.starts))  # [N] frame slot of a box
        # key = label * K + frame slot: sorted by it, the boxes of one class in one frame are contiguous
        self.key = labels * len(frame_values) + self.segment
        self.adjacent = np.append(np.diff(frame_values) == 1, False)  # [K] slot k + 1 is the next frame
        self.link_from, self.link_to = self._same_class_pairs(1, lambda iou: iou > params.link_iou)
        self.out_start = np.searchsorted(self.link_from, np.arange(len(frames) + 1))
        by_target = np.argsort(self.link_to, kind="stable")  # stable: a target's sources stay ascending
        self.in_from, self.in_to = self.link_from[by_target], self.link_to[by_target]
        self.in_start = np.searchsorted(self.in_to, np.arange(len(frames) + 1))
        self.own = scores.copy()
        self.best = np.full(len(frames), -np.inf)
        self.back = np.full(len(frames), -1, np.int64)

    def _same_class_pairs(self, step: int, keep) -> np.ndarray:
        """The pairs of boxes of one class in frame slots ``s`` and ``s + step`` (step 1: only where those are
        adjacent frames) whose IoU passes ``keep(iou [P]) -> bool [P]``, as flat indices ``int64 [2, P']`` sorted by
        the first. The candidates (quadratic in the boxes of a class per frame) are compared in blocks of about
        ``PAIR_BLOCK`` pairs, so that only the kept pairs take memory."""
        order = np.argsort(self.key, kind="stable")
        sorted_key = self.key[order]
        lo = np.searchsorted(sorted_key, self.key + step)
        hi = np.searchsorted(sorted_key, self.key + step, side="right")
        if step:
            hi = np.where(self.adjacent[self.segment], hi, lo)
        total = np.append(0, np.cumsum(hi - lo))  # [N + 1] candidates before each box
        kept, start = [np.zeros((2, 0), np.int64)], 0
        while start < len(self.key):
            stop = max(start + 1, int(np.searchsorted(total, total[start] + PAIR_BLOCK, side="right")) - 1)
            counts = (hi - lo)[start:stop]
            first = np.repeat(np.arange(start, stop), counts)
            second = order[_concatenated_ranges(lo[start:stop], hi[start:stop])]
            # repeat, not a gather, for the first box of each pair: the cheaper half of the comparison
            passed = keep(box_iou(np.repeat(self.boxes[start:stop], counts, axis=0), self.boxes[second],
                                  np.repeat(self.area[start:stop], counts), self.area[second]))
            kept.append(np.stack([first[passed], second[passed]]))
            start = stop
        return np.concatenate(kept, axis=1)

    def _index_classes(self, members: np.ndarray) -> None:
        """Group the boxes ``members`` by class: ``by_class [M]`` (frame order within a class), ``class_starts``
        the groups' offsets and ``class_key [M]`` their ``key`` (ascending). Rebuilt from the boxes still in the
        graph as they thin out, so that a round's cost follows what is left."""
        self.by_class = members[np.argsort(self.key[members], kind="stable")]
        self.class_key = self.key[self.by_class]
        self.class_starts = np.append(np.unique(self.labels[self.by_class], return_index=True)[1], len(members))

    def isolated(self) -> np.ndarray:
        """``bool [N]``: boxes linked to nothing that overlap (IoU >= nms_iou) no other box of their class in their
        frame. Each is a one-frame sequence that suppresses nothing and that nothing suppresses, whenever it is
        taken, so it is kept as it is before the first round instead of costing a round of its own."""
        first, second = self._same_class_pairs(0, lambda iou: iou >= self.params.nms_iou)
        crowded = first[first != second]
        linked = np.concatenate([self.link_from, self.link_to])
        return np.bincount(np.concatenate([crowded, linked]), minlength=len(self.key)) == 0

    def forward(self, k: int) -> bool:
        """Recompute ``best`` / ``back`` of frame slot ``k`` from slot ``k - 1``; True when ``best`` changed."""
        lo, hi = self.starts[k], self.starts[k + 1]
        best, back = self.own[lo:hi].copy(), np.full(hi - lo, -1, np.int64)
        edges = slice(self.in_start[lo], self.in_start[hi])  # the links into slot k, by target then source
        sources, targets = self.in_from[edges], self.in_to[edges]
        if len(targets):
            heads = np.flatnonzero(np.append(True, targets[1:] != targets[:-1]))  # each linked box's first edge
            values = self.best[sources]
            top = np.maximum.reduceat(values, heads)  # -inf: no linked predecessor in the graph
            # the first maximum wins a tie (lowest source index)
            at_top = np.flatnonzero(values == np.repeat(top, np.diff(np.append(heads, len(values)))))
            winner = sources[at_top[np.searchsorted(at_top, heads)]]
            # extend the best predecessor's sequence when that adds something (all scores are >= 0 in practice);
            # boxes out of the graph stay at -inf
            rows = targets[heads] - lo
            best[rows] += np.maximum(top, 0.0)
            back[rows] = np.where(top > 0, winner, -1)
        changed = bool((best != self.best[lo:hi]).any())
        self.best[lo:hi] = best
        self.back[lo:hi] = back
        return changed

    def sequence(self, end: int) -> np.ndarray:
        """Flat indices of the sequence ending at ``end``, first frame first."""
        path = [end]
        while self.back[path[-1]] >= 0:
            path.append(int(self.back[path[-1]]))
        return np.asarray(path[::-1], np.int64)

    def class_maxima(self) -> np.ndarray:
        """Flat indices of the end of every class's best sequence, for the classes with boxes in the graph (first
        in frame order on a tie)."""
        best = self.best[self.by_class]
        top = np.maximum.reduceat(best, self.class_starts[:-1])
        at_top = np.nonzero((best == np.repeat(top, np.diff(self.class_starts))) & (best > -np.inf))[0]
        group = np.searchsorted(self.class_starts, at_top, side="right")
        return self.by_class[at_top[np.unique(group, return_index=True)[1]]]

    def suppress(self, flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Take sequences' boxes and every box they suppress out of the graph; returns their flat indices.

        Sequence ``i`` is ``flat[offsets[i]:offsets[i] + lengths[i]]``, first frame first; the sequences are of
        different classes. The boxes of a sequence's class in its frames are compared with the sequence's box of
        their frame (a sequence has one box in every frame slot from its first to its last); IoU >= nms_iou
        suppresses."""
        first, last = self.segment[flat[offsets]], self.segment[flat[offsets + lengths - 1]]
        key = self.key[flat[offsets]] - first  # the key of the sequence's class at slot 0
        lo, hi = np.searchsorted(self.class_key, key + first), np.searchsorted(self.class_key, key + last, "right")
        which = np.repeat(np.arange(len(offsets)), hi - lo)  # the sequence each compared box belongs to
        rows = self.by_class[_concatenated_ranges(lo, hi)]
        owners = flat[offsets[which] + self.segment[rows] - first[which]]  # the sequence's box in the row's frame
        hit = box_iou(self.boxes[rows], self.boxes[owners], self.area[rows], self.area[owners]) >= self.params.nms_iou
        removed = np.union1d(rows[hit & (self.own[rows] > -np.inf)], flat)
        self.own[removed] = -np.inf
        self.best[removed] = -np.inf
        return removed

    def update(self, removed: np.ndarray) -> None:
        """Re-run the programme where ``removed`` boxes were predecessors of boxes still in the graph, and onwards
        from every frame whose values changed (all other frames read unchanged values)."""
        successors = self.link_to[_concatenated_ranges(self.out_start[removed], self.out_start[removed + 1])]
        todo = sorted(set(self.segment[successors[self.own[successors] > -np.inf]].tolist()))
        while todo:
            k = todo.pop(0)
            if self.forward(k) and self.adjacent[k]:
                if not todo or todo[0] != k + 1:
                    todo.insert(0, k + 1)

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        """All selections; returns the kept flat indices ``[M]`` (ascending) and their new scores ``[M]``.

        Classes never interact, so each round takes the best sequence of every class at once: the order in which
        any one class's sequences are taken is the one-at-a-time order of the paper."""
        lone = np.nonzero(self.isolated())[0]
        self.own[lone] = -np.inf
        self._index_classes(np.nonzero(self.own > -np.inf)[0])
        for k in range(len(self.starts) - 1):
            self.forward(k)
        kept, rescored = [lone], [self.scores[lone]]
        remaining = len(self.by_class)
        while len(ends := self.class_maxima()):
            paths = [self.sequence(int(end)) for end in ends]
            lengths = np.array([len(path) for path in paths])
            offsets = np.cumsum(lengths) - lengths
            flat = np.concatenate(paths)
            if self.params.rescore == "avg":
                score = self.best[ends] / lengths  # best at a sequence's end is the sum of its scores
            else:
                score = np.maximum.reduceat(self.scores[flat], offsets)
            kept.append(flat)
            rescored.append(np.repeat(score, lengths))
            removed = self.suppress(flat, offsets, lengths)
            self.update(removed)
            remaining -= len(removed)
            if 2 * remaining < len(self.by_class):
                self._index_classes(np.nonzero(self.own > -np.inf)[0])
        kept, rescored = np.concatenate(kept), np.concatenate(rescored)
        order = np.argsort(kept)
        return kept[order], rescored[order]


def seq_nms(frames: np.ndarray, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray,
            params: SeqNMSParams = SeqNMSParams()) -> tuple[np.ndarray, np.ndarray]:
    """Seq-NMS on the detections of one video.

    Args:
        frames: ``int [N]`` frame number of each detection in its video (frames ``t`` and ``t + 1`` are adjacent;
            a frame without detections breaks every sequence).
        boxes: ``float [N, 4]`` x1, y1, x2, y2.
        labels: ``int [N]`` classes.
        scores: ``float [N]``.
    Returns:
        ``keep int64 [M]``: indices of the kept detections (ascending), and ``scores float64 [M]``: their new
        scores. The others were suppressed.
    """
    frames = np.asarray(frames, np.int64).reshape(-1)
    if len(frames) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    order = np.argsort(frames, kind="stable")
    graph = _VideoGraph(frames[order], np.asarray(boxes, np.float64).reshape(-1, 4)[order],
                        np.asarray(labels, np.int64).reshape(-1)[order],
                        np.asarray(scores, np.float64).reshape(-1)[order], params)
    kept, rescored = graph.run()
    keep = order[kept]
    ascending = np.argsort(keep)
    return keep[ascending], rescored[ascending]


# ---------------------------------------------------------------------------- whole splits / videos, the registry

#: Seq-NMS on a split / on one video's per-frame results / on a stream of them (:mod:`dsfnet.postprocess.apply`)
seq_nms_dataset = functools.partial(postprocess_dataset, seq_nms, label="Seq-NMS")
seq_nms_frame_results = functools.partial(postprocess_frame_results, seq_nms)
seq_nms_stream = functools.partial(postprocess_stream, seq_nms)


def _iou(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"an IoU in [0, 1], got {text}")
    return value


def _add_arguments(group: argparse._ArgumentGroup) -> None:
    defaults = SeqNMSParams()
    group.add_argument("--seqnms-link-iou", type=_iou, default=defaults.link_iou, metavar="IOU",
                       help="Seq-NMS links boxes of adjacent frames whose IoU is above this")
    group.add_argument("--seqnms-nms-iou", type=_iou, default=defaults.nms_iou, metavar="IOU",
                       help="Seq-NMS removes boxes whose IoU with a selected sequence's box in their frame is at "
                            "least this")
    group.add_argument("--seqnms-rescore", choices=RESCORE_METHODS, default=defaults.rescore,
                       help="new score of a sequence's boxes: their average or their maximum score")


POSTPROCESSORS.register("seqnms", PostProcessor(
    run=seq_nms, label="Seq-NMS", add_arguments=_add_arguments,
    settings=lambda args: SeqNMSParams(args.seqnms_link_iou, args.seqnms_nms_iou, args.seqnms_rescore),
    help="Seq-NMS (Han et al. 2016): link boxes of one class across adjacent frames, rescore the best-scoring "
         "sequences and suppress boxes overlapping them"))
