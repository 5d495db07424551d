"""The synthetic generator: real layout read back by the plain VID reader, motion groups, determinism, CLI."""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
import pytest
from PIL import Image

from dsfnet.commands import synth as synth_command
from dsfnet.data.synth import SYNTH_CLASSES, generate_synthetic_vid, train_key_frames
from dsfnet.data.classes import NAME_TO_LABEL
from dsfnet.data.vid import read_vid_split
from dsfnet.errors import InputError
from dsfnet.evaluation.motion import MOTION_GROUPS, motion_ious


def test_layout_is_read_back_by_the_vid_reader(synth_root, tmp_path):
    train = read_vid_split(synth_root, "VID_train_15frames", cache_dir=tmp_path)
    assert len(train.videos) == 12 and all(len(video) == 30 for video in train.videos)
    assert len(train.key_frames) == 12 * 15
    val = read_vid_split(synth_root, "VID_val_videos", cache_dir=tmp_path)
    val_frames = read_vid_split(synth_root, "VID_val_frames", cache_dir=tmp_path)
    assert [v.name for v in val.videos] == [v.name for v in val_frames.videos] == \
        [f"val/ILSVRC2015_val_{i:08d}" for i in range(3)]
    det = read_vid_split(synth_root, "DET_train_30classes", cache_dir=tmp_path)
    assert len(det.videos) == 6 and all(video.is_still_image for video in det.videos)
    assert len(det.key_frames) > len(det.videos)  # two-class images are listed twice, like the real split
    assert not (synth_root / "ImageSets" / "DET_train_30classes.txt").read_text().endswith("\n")

    frames = train.frames() + val.frames() + det.frames()
    labels = np.concatenate([f.labels for f in frames])
    assert set(labels.tolist()) == {NAME_TO_LABEL[name] for name in SYNTH_CLASSES}
    boxes = np.concatenate([f.boxes for f in frames])
    sizes = np.sqrt((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1))
    assert 15 < np.median(sizes) < 60
    assert all((f.boxes[:, 2] <= 95).all() and (f.boxes[:, 3] <= 79).all() for f in frames)
    counts = [len(np.unique(video.frames[0].track_ids)) for video in train.videos]
    assert min(counts) >= 1 and max(counts) <= 3
    image = Image.open(train.videos[0].frames[7].image_path)
    assert image.format == "JPEG" and image.size == (96, 80)


def test_motion_groups_and_degradations(synth_root, tmp_path):
    dataset = read_vid_split(synth_root, "VID_train_15frames", cache_dir=tmp_path)
    ious = np.concatenate([m for video in dataset.videos for m in motion_ious(video)])
    fractions = {group: float(((ious >= lo) & (ious <= hi)).mean()) for group, (lo, hi) in MOTION_GROUPS.items()}
    assert all(fraction >= 0.10 for fraction in fractions.values()), fractions
    degraded = np.concatenate([f.degraded for f in dataset.frames()])
    assert 0.25 < degraded.mean() < 0.55
    # Degradation is transient: every object also has clear frames.
    for video in dataset.videos:
        for track in np.unique(video.frames[0].track_ids):
            flags = [f.degraded[f.track_ids == track].any() for f in video.frames]
            assert 0 < sum(flags) < len(flags)
    occluded = np.concatenate([f.occluded for f in dataset.frames()])
    assert occluded.any() and (occluded <= degraded).all()


def _digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)).digest()


def test_deterministic_from_seed(tmp_path):
    def make(name, seed):
        return generate_synthetic_vid(tmp_path / name, 2, seed, num_val_videos=1, num_frames=4, num_det_images=1,
                                      size=(80, 64))

    first = _digest(make("a", 1))
    assert first == _digest(make("b", 1))
    assert first != _digest(make("c", 2))


def test_train_key_frames_are_evenly_spaced():
    assert train_key_frames(30) == list(range(1, 30, 2))
    assert train_key_frames(4) == [0, 1, 2, 3]


def test_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    synth_command.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "out"), "--videos", "1", "--val-videos", "1", "--frames", "3",
                              "--det-images", "1", "--size", "72x64", "--seed", "5"])
    assert synth_command.run(args) == 0
    assert (tmp_path / "out" / "Data" / "VID" / "val" / "ILSVRC2015_val_00000000" / "000002.JPEG").is_file()
    with pytest.raises(SystemExit):
        parser.parse_args([str(tmp_path), "--size", "big"])
    for action in parser._actions[1:]:
        assert action.help
    assert synth_command.HELP


def _net_speeds(dataset) -> np.ndarray:
    """Per object: the distance its box centre travels from the first frame to the last, per frame, over its mean
    size (rare poses and occlusion change a box's size and motion IoU, not where it is)."""
    speeds = []
    for video in dataset.videos:
        for track in np.unique(video.frames[0].track_ids):
            boxes = np.stack([frame.boxes[frame.track_ids == track][0] for frame in video.frames])
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            sizes = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
            speeds.append(np.linalg.norm(centres[-1] - centres[0]) / len(boxes) / sizes.mean())
    return np.asarray(speeds)


def test_motion_groups_keep_a_subset_of_the_speeds(tmp_path):
    parser = argparse.ArgumentParser()
    synth_command.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "slow"), "--videos", "4", "--val-videos", "0", "--frames", "21",
                              "--det-images", "0", "--size", "96x80", "--motion-groups", "slow"])
    assert synth_command.run(args) == 0
    slow = _net_speeds(read_vid_split(tmp_path / "slow", "VID_train_15frames", cache_dir=tmp_path))
    default = generate_synthetic_vid(tmp_path / "all", 4, 0, num_val_videos=0, num_frames=21, num_det_images=0,
                                     size=(96, 80))
    every = _net_speeds(read_vid_split(default, "VID_train_15frames", cache_dir=tmp_path))
    # slow objects move at most 0.004 of their size per frame, medium ones at least 0.012
    assert len(slow) >= 4 and slow.max() < 0.005 and every.max() > 0.01
    for bad in ([], ["slow", "slow"], ["sideways"]):
        with pytest.raises(InputError, match="motion groups must be distinct names among slow, medium, fast"):
            generate_synthetic_vid(tmp_path / "bad", 1, 0, num_val_videos=0, num_frames=2, motion_groups=bad)
    assert not (tmp_path / "bad").exists()
