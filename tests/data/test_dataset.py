"""Training clips: format, key frame first, DET repetition, reproducibility with 2 workers, bad images."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from dsfnet.data.augment import ClipAugment, Crop, Expand, crop_boxes, expand
from dsfnet.data.dataset import TrainClipDataset, collate_clips
from dsfnet.data.synth import generate_synthetic_vid
from dsfnet.data.transforms import ClipTransform
from dsfnet.data.vid import read_vid_split
from dsfnet.engine.distributed import DistributedContext
from dsfnet.engine.trainer import batch_stream


@pytest.fixture(scope="module")
def splits(synth_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return [read_vid_split(synth_root, split, cache_dir=cache) for split in ("VID_train_15frames",
                                                                             "DET_train_30classes")]


def test_clip_format(splits):
    train, det = splits
    dataset = TrainClipDataset([train, det], num_support=2, transform=ClipTransform(64, 200, 0.5), seed=0)
    assert len(dataset) == len(train.key_frames) + len(det.key_frames)
    item = dataset[3]
    v, f = train.key_frames[3]
    key = train.videos[v].frames[f]
    frames, meta = item["frames"], item["meta"]
    assert frames.shape == (3, 3, 64, 77) and frames.dtype == torch.float32  # 80x96 -> 64x77 (scale 0.8)
    assert meta["video"] == train.videos[v].name and meta["orig_size"] == (80, 96) and meta["scale"] == 0.8
    assert meta["frame_indices"][0] == key.frame_index and len(set(meta["frame_indices"])) == 3
    expected = key.boxes * 0.8
    if meta["flip"]:
        expected = np.stack([76 - expected[:, 2], expected[:, 1], 76 - expected[:, 0], expected[:, 3]], 1)
    np.testing.assert_allclose(item["target"]["boxes"].numpy(), expected, rtol=1e-6)
    assert item["target"]["labels"].dtype == torch.int64
    assert item["target"]["labels"].tolist() == key.labels.tolist()

    still = dataset[len(train.key_frames)]
    assert still["meta"]["frame_indices"] == [0, 0, 0] and still["frames"].shape[0] == 3
    assert torch.equal(still["frames"][0], still["frames"][2])

    batch = collate_clips([item, still])
    assert batch["clips"][0] is item["frames"] and [m["video"] for m in batch["metas"]] == \
        [meta["video"], still["meta"]["video"]]


def test_randomness_depends_on_seed_epoch_index(splits):
    dataset = TrainClipDataset(splits[:1], 2, ClipTransform(64, 200, 0.5), seed=1)
    first = [dataset[i]["meta"] for i in range(20)]
    assert [dataset[i]["meta"] for i in reversed(range(20))][::-1] == first  # order does not matter
    dataset.set_epoch(1)
    assert [dataset[i]["meta"] for i in range(20)] != first
    assert {m["flip"] for m in first} == {True, False}


def _loader(splits, seed, workers, start=0, num_support=2, min_size=48, augment=None):
    """The trainer's batch stream (2 clips per batch) over the splits, from batch ``start``."""
    dataset = TrainClipDataset(splits, num_support, ClipTransform(min_size, 100, 0.5), seed, augment=augment)
    return batch_stream(dataset, collate_clips, 2, start, seed, DistributedContext(), num_workers=workers)


def _run(splits, seed, epoch, workers, augment=None):
    per_epoch = sum(len(s.key_frames) for s in splits) // 2
    out = []
    for step, (_, batch) in enumerate(_loader(splits, seed, workers, start=epoch * per_epoch, augment=augment)):
        out += [(m["video"], m["frame_indices"], m["flip"], m["scale"], m["augment"], c.sum().item(),
                 t["boxes"].tolist(), t["labels"].tolist())
                for m, c, t in zip(batch["metas"], batch["clips"], batch["targets"])]
        if step == 5:
            break
    return out


def test_same_seed_same_clips_with_two_workers(splits):
    first = _run(splits, seed=7, epoch=0, workers=2)
    assert len(first) == 12
    assert _run(splits, seed=7, epoch=0, workers=2) == first
    assert _run(splits, seed=7, epoch=0, workers=0) == first  # independent of the worker layout
    assert _run(splits, seed=7, epoch=1, workers=2) != first
    assert _run(splits, seed=8, epoch=0, workers=2) != first


SSD = ClipAugment(photometric=True, expand=2.0, crop=True)


def test_augmented_clips_reproducible_with_any_worker_count(splits):
    first = _run(splits, seed=7, epoch=0, workers=2, augment=SSD)
    assert _run(splits, seed=7, epoch=0, workers=0, augment=SSD) == first
    assert _run(splits, seed=8, epoch=0, workers=0, augment=SSD) != first
    plain = _run(splits, seed=7, epoch=0, workers=0)
    assert [a[:2] for a in first] == [p[:2] for p in plain]  # same support frames (drawn before the augmentation)
    assert sum(a[5] != p[5] for a, p in zip(first, plain)) >= len(first) - 2  # but other pixels (almost always)


def test_augment_off_changes_nothing(splits):
    plain = TrainClipDataset(splits, 2, ClipTransform(64, 200, 0.5), seed=3)
    off = TrainClipDataset(splits, 2, ClipTransform(64, 200, 0.5), seed=3, augment=ClipAugment())
    for i in range(0, len(plain), 7):
        a, b = plain[i], off[i]
        assert torch.equal(a["frames"], b["frames"]) and a["meta"] == b["meta"] and b["meta"]["augment"] is None
        assert torch.equal(a["target"]["boxes"], b["target"]["boxes"])


def _expected_target(key, meta):
    """The key frame's boxes and labels as the recorded parameters move them, then resized and flipped."""
    boxes, keep = key.boxes.astype(np.float32), np.arange(len(key.boxes))
    params = meta["augment"]
    width, height = key.width, key.height
    if params["expand"] is not None:
        placement = Expand(**params["expand"])
        _, boxes = expand(torch.zeros(1, 3, height, width, dtype=torch.uint8), boxes, placement, (0, 0, 0))
        width, height = placement.width, placement.height
    if params["crop"] is not None:
        crop = Crop(**params["crop"])
        boxes, keep = crop_boxes(boxes, crop)
        width, height = crop.right - crop.left, crop.bottom - crop.top
    new_h, new_w = int(round(height * meta["scale"])), int(round(width * meta["scale"]))
    boxes = (boxes * np.float32(meta["scale"])).clip(0, [new_w - 1, new_h - 1, new_w - 1, new_h - 1])
    if meta["flip"]:
        boxes = np.stack([new_w - 1 - boxes[:, 2], boxes[:, 1], new_w - 1 - boxes[:, 0], boxes[:, 3]], 1)
    return boxes, key.labels[keep], (new_h, new_w)


def test_augmented_targets_follow_the_pixels(splits):
    train = splits[0]
    # photometric distortion moves no box (test_augment.py) and takes most of the time: off here
    dataset = TrainClipDataset([train], 2, ClipTransform(64, 200, 0.5), seed=0,
                               augment=ClipAugment(expand=2.0, crop=True))
    dropped = steps = 0
    for i in range(len(dataset)):
        item = dataset[i]
        v, f = train.key_frames[i]
        boxes, labels, size = _expected_target(train.videos[v].frames[f], item["meta"])
        assert item["frames"].shape[-2:] == size
        np.testing.assert_allclose(item["target"]["boxes"].numpy(), boxes, rtol=1e-5, atol=1e-4)
        assert item["target"]["labels"].tolist() == labels.tolist()
        dropped += len(labels) < len(train.videos[v].frames[f].labels)
        steps += all(item["meta"]["augment"][name] is not None for name in ("expand", "crop"))
    assert steps >= 1 and dropped >= 1  # the cases worth checking occurred


def test_augmented_still_images_and_empty_frames(vid_tree, tmp_path):
    from tests.data.conftest import DET_DOG, DET_EMPTY

    for name, size in ((DET_DOG, (60, 50)), (DET_EMPTY, (40, 30))):
        path = vid_tree / "Data" / "DET" / (name + ".JPEG")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(0).integers(0, 256, size[::-1] + (3,), dtype=np.uint8)).save(path)
    det = read_vid_split(vid_tree, "DET_train_30classes", cache_dir=tmp_path / "cache")
    dataset = TrainClipDataset([det], 2, ClipTransform(32, 100, 0.5), seed=0, augment=SSD)
    for epoch in range(6):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            item = dataset[i]
            boxes, labels = item["target"]["boxes"], item["target"]["labels"]
            assert boxes.shape == (len(labels), 4) and boxes.dtype == torch.float32 and labels.dtype == torch.int64
            assert torch.all(boxes[:, 2:] >= boxes[:, :2])
            assert torch.equal(item["frames"][0], item["frames"][2])  # the repeated image is augmented once
            if item["meta"]["video"] == DET_EMPTY:
                assert boxes.shape == (0, 4)


@pytest.fixture
def tiny(tmp_path):
    root = generate_synthetic_vid(tmp_path / "tiny", 2, seed=0, num_val_videos=0, num_frames=4, num_det_images=0,
                                  size=(64, 64))
    return root, read_vid_split(root, "VID_train_15frames", cache_dir=tmp_path / "cache")


def test_missing_and_corrupt_frames_name_file_and_sample(tiny):
    root, train = tiny
    missing = root / "Data" / "VID" / train.videos[0].name / "000001.JPEG"
    missing.unlink()
    stream = _loader([train], 0, workers=2, num_support=3, min_size=16)
    with pytest.raises(FileNotFoundError, match=r"training sample \d+ \(video .*000001.JPEG"):
        for _ in stream:
            pass
    stream.close()
    corrupt = root / "Data" / "VID" / train.videos[1].name / "000002.JPEG"
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    dataset = TrainClipDataset([train], 3, ClipTransform(32), seed=0)
    with pytest.raises(ValueError, match=r"training sample 4 \(video .*cannot decode image .*000002.JPEG"):
        dataset[4]


def test_skip_bad_samples_logs_and_replaces(tiny, caplog):
    root, train = tiny
    (root / "Data" / "VID" / train.videos[0].name / "000000.JPEG").unlink()
    # With 3 support frames out of 4, every clip of video 0 needs its frame 0: samples 0-3 are skipped.
    dataset = TrainClipDataset([train], 3, ClipTransform(32), seed=0, skip_bad=True)
    with caplog.at_level(logging.WARNING, logger="dsfnet.data.dataset"):
        item = dataset[0]
    assert item["meta"]["video"] == train.videos[1].name and item["meta"]["frame_indices"][0] == 0
    assert len(caplog.records) == 4 and all("000000.JPEG" in r.getMessage() for r in caplog.records)
    strict = TrainClipDataset([train], 3, ClipTransform(32), seed=0)
    with pytest.raises(FileNotFoundError):
        strict[0]
