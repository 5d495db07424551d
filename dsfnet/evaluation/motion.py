"""Motion IoU of ground-truth objects and the slow / medium / fast groups (DESIGN §6, FGFA's protocol).

The motion IoU of an object at frame ``t`` is the mean IoU (+1 pixel convention) between its box at ``t`` and
its boxes at the frames ``s`` of the same video with ``0 < |s - t| <= 10`` (``frame_index`` values) where the
same track id is present; 1.0 when there is no such frame. It is computed from the annotations alone, so it works
for any dataset with track ids.
"""

from __future__ import annotations

import numpy as np

from dsfnet.data.records import DatasetRecord, VideoRecord
from dsfnet.errors import InputError

#: Inclusive bounds of the motion groups (a value on a boundary belongs to both neighbouring groups, as in FGFA).
MOTION_GROUPS: dict[str, tuple[float, float]] = {"slow": (0.9, 1.0), "medium": (0.7, 0.9), "fast": (0.0, 0.7)}

#: Frames on each side of ``t`` that contribute to the motion IoU.
MOTION_WINDOW = 10


def box_iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The devkit IoU of matching rows of ``a [n, 4]`` and ``b [n, 4]`` (inclusive corners, +1 widths) →
    float64 [n]; 0 when the +1 intersection is empty in either axis. Used by the matching and the motion IoU."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1.0
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1.0
    valid = (iw > 0) & (ih > 0)
    inter = np.where(valid, iw * ih, 0.0)
    union = ((a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
             + (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0) - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, inter / union, 0.0)


def motion_ious(video: VideoRecord, window: int = MOTION_WINDOW) -> list[np.ndarray]:
    """Motion IoU of every ground-truth box of ``video``.

    Returns one ``float64 [k]`` array per frame, aligned with ``frame.boxes`` of that frame.
    """
    out = [np.ones(len(frame.boxes), np.float64) for frame in video.frames]
    # Gather every sighting as (track, frame_index, frame position, row in frame, box).
    tracks, findex, fpos, rows, boxes = [], [], [], [], []
    for pos, frame in enumerate(video.frames):
        k = len(frame.boxes)
        if k == 0:
            continue
        track_ids = np.asarray(frame.track_ids, np.int64).reshape(-1)
        if len(track_ids) != k:
            raise InputError(f"video {video.name!r} frame {frame.frame_index}: {k} boxes but "
                             f"{len(track_ids)} track ids")
        tracks.append(track_ids)
        findex.append(np.full(k, int(frame.frame_index), np.int64))
        fpos.append(np.full(k, pos, np.int64))
        rows.append(np.arange(k, dtype=np.int64))
        boxes.append(np.asarray(frame.boxes, np.float64).reshape(k, 4))
    if not tracks:
        return out
    tracks = np.concatenate(tracks)
    findex = np.concatenate(findex)
    fpos = np.concatenate(fpos)
    rows = np.concatenate(rows)
    boxes = np.concatenate(boxes)
    # Sort by (track, frame_index) so that each track's sightings are contiguous and ordered in time.
    order = np.lexsort((findex, tracks))
    tracks, findex, fpos, rows, boxes = tracks[order], findex[order], fpos[order], rows[order], boxes[order]
    # A combined key makes "same track at frame t + d" a single exact search over the sorted array.
    span = int(findex.max() - findex.min()) + 2 * window + 1
    key = (tracks - tracks.min()) * span + (findex - findex.min() + window)
    total = np.zeros(len(key), np.float64)
    count = np.zeros(len(key), np.int64)
    n = len(key)
    for d in range(-window, window + 1):
        if d == 0:
            continue
        idx = np.searchsorted(key, key + d)
        hit = idx < n
        hit[hit] = key[idx[hit]] == key[hit] + d
        if not hit.any():
            continue
        src = np.nonzero(hit)[0]
        total[src] += box_iou_pairs(boxes[src], boxes[idx[src]])
        count[src] += 1
    miou = np.where(count > 0, total / np.maximum(count, 1), 1.0)
    for p, r, v in zip(fpos.tolist(), rows.tolist(), miou.tolist()):
        out[p][r] = v
    return out


def dataset_motion_ious(dataset: DatasetRecord) -> list[np.ndarray]:
    """Motion IoU of every GT box, one array per frame of ``dataset.frames()`` (split order)."""
    out: list[np.ndarray] = []
    for video in dataset.videos:
        out.extend(motion_ious(video))
    return out


def group_mask(ious: np.ndarray, group: str) -> np.ndarray:
    """Boolean mask of the motion IoUs that lie in ``group`` (inclusive bounds); ``"all"`` selects everything."""
    ious = np.asarray(ious, np.float64)
    if group == "all":
        return np.ones(ious.shape, bool)
    if group not in MOTION_GROUPS:
        raise InputError(f"unknown motion group {group!r}; expected one of {sorted(MOTION_GROUPS)} or 'all'")
    lo, hi = MOTION_GROUPS[group]
    return (ious >= lo) & (ious <= hi)
