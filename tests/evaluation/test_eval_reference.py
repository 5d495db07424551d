"""Randomised cross-check of the vectorised evaluator against a slow, literal implementation of DESIGN §6."""

import numpy as np
import pytest

import dsfnet.evaluation.vid_map as vid_map
from dsfnet.evaluation.motion import dataset_motion_ious
from evalhelpers import CLASSES, dataset, dets, video

GROUPS = {"slow": (0.9, 1.0), "medium": (0.7, 0.9), "fast": (0.0, 0.7)}


# ----------------------------------------------------------------------------------- reference (plain loops)

def ref_iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union


def ref_motion(ds):
    out = []
    for v in ds.videos:
        for f in v.frames:
            values = []
            for box, tid in zip(f.boxes.tolist(), f.track_ids.tolist()):
                ious = []
                for g in v.frames:
                    if 0 < abs(g.frame_index - f.frame_index) <= 10:
                        for box2, tid2 in zip(g.boxes.tolist(), g.track_ids.tolist()):
                            if tid2 == tid:
                                ious.append(ref_iou(box, box2))
                values.append(sum(ious) / len(ious) if ious else 1.0)
            out.append(values)
    return out


def ref_ap(rec, prec):
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


def ref_eval(ds, d, group=None):
    """Per-class APs (None without GT) for all GT (group None) or one motion group."""
    frames = ds.frames()
    motion = ref_motion(ds)
    gts = []
    for f, m in zip(frames, motion):
        objs = []
        for box, label, mi in zip(f.boxes.tolist(), f.labels.tolist(), m):
            w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
            ignored = group is not None and not (GROUPS[group][0] <= mi <= GROUPS[group][1])
            objs.append({"box": box, "label": label, "thr": min(0.5, w * h / ((w + 10) * (h + 10))),
                         "ignored": ignored, "used": False})
        gts.append(objs)
    all_gt = [o for objs in gts for o in objs]
    empty_weight = sum(not o["ignored"] for o in all_gt) / len(all_gt)
    n = len(d)
    order = sorted(range(n), key=lambda i: -d.scores[i])          # Python's sort is stable
    tp, fp = [0.0] * n, [0.0] * n
    for i in order:
        objs = gts[d.frame_ids[i]]
        box = d.boxes[i].tolist()
        best, kbest = -1.0, -1
        for k, o in enumerate(objs):
            if o["label"] != d.labels[i] or o["used"]:
                continue
            ov = ref_iou(box, o["box"])
            if ov >= o["thr"] and ov > best:
                best, kbest = ov, k
        if kbest >= 0:
            objs[kbest]["used"] = True
            tp[i] = 0.0 if objs[kbest]["ignored"] else 1.0
        else:
            o_i = max([ref_iou(box, o["box"]) for o in objs if o["ignored"]], default=-1.0)
            o_n = max([ref_iou(box, o["box"]) for o in objs if not o["ignored"]], default=-1.0)
            if o_n > o_i:
                fp[i] = 1.0
            elif o_i > o_n:
                fp[i] = 0.0
            elif not objs:
                fp[i] = empty_weight
            else:
                fp[i] = sum(o["ignored"] for o in objs) / len(objs)   # DESIGN §6: fraction of frame's GT ignored
    aps = {}
    for c, name in enumerate(ds.class_names, start=1):
        npos = sum(1 for o in all_gt if o["label"] == c and not o["ignored"])
        if npos == 0:
            aps[name] = None
            continue
        ctp = cfp = 0.0
        rec, prec = [], []
        for i in order:
            if d.labels[i] == c:
                ctp += tp[i]
                cfp += fp[i]
                rec.append(ctp / npos)
                prec.append(ctp / max(ctp + cfp, np.finfo(np.float64).eps))
        aps[name] = ref_ap(rec, prec)
    return aps


# ----------------------------------------------------------------------------------- random scenes

def random_scene(seed):
    rng = np.random.default_rng(seed)
    videos = []
    for v in range(3):
        num_frames = int(rng.integers(4, 14))
        speed = float(rng.choice([0.0, 0.3, 1.0, 10.0]))
        tracks = []
        for tid in range(int(rng.integers(1, 4))):
            size = float(rng.choice([6, 12, 30, 80]))
            tracks.append({"tid": tid, "label": int(rng.integers(1, 4)), "x": float(rng.uniform(0, 200)),
                           "y": float(rng.uniform(0, 200)), "w": size, "h": size * float(rng.uniform(0.5, 2))})
        frames, indices = [], sorted(rng.choice(np.arange(30), num_frames, replace=False).tolist())
        for _ in indices:
            objects = []
            for t in tracks:
                t["x"] += rng.normal(0, speed)
                t["y"] += rng.normal(0, speed)
                if rng.random() < 0.8:
                    x, y = round(t["x"]), round(t["y"])
                    objects.append((t["label"], t["tid"], [x, y, x + round(t["w"]), y + round(t["h"])]))
            frames.append(objects)
        videos.append(video(f"v{v}", frames, frame_indices=indices))
    ds = dataset(*videos)
    rows = []
    for p, f in enumerate(ds.frames()):
        for box, label in zip(f.boxes.tolist(), f.labels.tolist()):
            for _ in range(int(rng.integers(0, 3))):                    # misses and duplicates
                w = box[2] - box[0] + 1
                jitter = rng.normal(0, 0.15 * w, 4)
                lab = label if rng.random() < 0.85 else int(rng.integers(1, 4))
                rows.append((p, lab, round(float(rng.random()), 1), (np.array(box) + jitter).tolist()))
        for _ in range(int(rng.integers(0, 3))):                        # background detections
            x, y, s = rng.uniform(0, 250, 3)
            rows.append((p, int(rng.integers(1, 4)), round(float(rng.random()), 1), [x, y, x + s / 3, y + s / 4]))
    return ds, dets(rows)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk", [4_000_000, 5])
def test_matches_reference(seed, chunk, monkeypatch):
    monkeypatch.setattr(vid_map, "_MAX_PAIRS_PER_CHUNK", chunk)
    ds, d = random_scene(seed)
    for mine, ref in zip(dataset_motion_ious(ds), ref_motion(ds)):
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-12)
    r = vid_map.evaluate(ds, d)
    expected = ref_eval(ds, d)
    for name in CLASSES:
        assert r.per_class_ap[name] == (None if expected[name] is None else pytest.approx(expected[name], abs=1e-12))
    for g in GROUPS:
        expected = ref_eval(ds, d, g)
        got = r.motion_per_class_ap[g]
        for name in CLASSES:
            assert got[name] == (None if expected[name] is None else pytest.approx(expected[name], abs=1e-12)), \
                (g, name)
        values = [v for v in expected.values() if v is not None]
        assert r.motion_map[g] == (pytest.approx(float(np.mean(values)), abs=1e-12) if values else None)
