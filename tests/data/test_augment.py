"""SSD-style clip augmentation: one draw per clip applied to every frame, boxes moved with the pixels (hand-computed
expand and crop cases), the min-IoU crop's constraints, empty targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from dsfnet.data.augment import (CROP_MIN_IOUS, ClipAugment, Crop, Expand, Photometric, crop_boxes, distort,
                                 draw_crop, draw_expand, draw_photometric, expand)


def _texture(height=48, width=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _arrays(augmented) -> list[np.ndarray]:
    return [np.asarray(image) for image in augmented.images]


def test_photometric_is_one_draw_for_the_clip_and_leaves_boxes_alone():
    texture = _texture()
    frames = [Image.fromarray(texture), Image.fromarray(texture.copy()), Image.fromarray(np.roll(texture, 7, 1))]
    boxes = np.array([[3, 4, 20, 30], [40, 10, 63, 47]], np.float32)
    changed = 0
    for seed in range(12):
        out = ClipAugment(photometric=True)(frames, boxes, np.random.default_rng(seed))
        first, copy, shifted = _arrays(out)
        np.testing.assert_array_equal(copy, first)  # equal frames stay equal
        # a shifted copy stays the shifted copy (up to one level of rounding: the contrast mean sums in another order)
        assert np.abs(shifted.astype(int) - np.roll(first, 7, 1).astype(int)).max() <= 1
        np.testing.assert_array_equal(out.boxes, boxes)
        np.testing.assert_array_equal(out.keep, [0, 1])
        assert out.expand is None and out.crop is None and first.shape == texture.shape
        changed += not np.array_equal(first, texture)
    assert changed >= 8  # all four steps skipped has probability 1/16


def test_photometric_draws_ssd_ranges():
    draws = [draw_photometric(np.random.default_rng(seed)) for seed in range(400)]
    for name, low, high in (("brightness", -32, 32), ("contrast", 0.5, 1.5), ("saturation", 0.5, 1.5),
                            ("hue", -18, 18)):
        values = [getattr(d, name) for d in draws if getattr(d, name) is not None]
        assert 0.4 < len(values) / len(draws) < 0.6, name  # each step with probability 0.5
        assert low <= min(values) and max(values) <= high and max(values) - min(values) > 0.8 * (high - low), name
    assert {d.contrast_first for d in draws} == {True, False}


def test_distort_steps_match_their_definitions():
    frames = torch.from_numpy(_texture()).permute(2, 0, 1)[None]
    brighter = distort(frames, Photometric(brightness=20.0, contrast=None, saturation=None, hue=None,
                                           contrast_first=True))
    np.testing.assert_array_equal(brighter.numpy(), np.minimum(frames.numpy().astype(int) + 20, 255))  # additive
    grey = torch.full_like(frames, 90)
    flat = Photometric(brightness=None, contrast=1.4, saturation=0.3, hue=10.0, contrast_first=False)
    assert torch.equal(distort(grey, flat), grey)  # a grey frame has no contrast, saturation or hue to change
    order = [Photometric(brightness=None, contrast=1.5, saturation=1.5, hue=None, contrast_first=first)
             for first in (True, False)]
    assert not torch.equal(distort(frames, order[0]), distort(frames, order[1]))  # the order is a real choice


def test_expand_hand_computed():
    frames = torch.full((2, 3, 8, 10), 200, dtype=torch.uint8)
    frames[1, :, 0, 0] = 7
    canvas, boxes = expand(frames, np.array([[2, 1, 5, 4]], np.float32), Expand(left=4, top=3, height=12, width=16),
                           fill=(1, 2, 3))
    assert canvas.shape == (2, 3, 12, 16)
    np.testing.assert_array_equal(boxes, [[6, 4, 9, 7]])
    assert torch.equal(canvas[:, :, 3:11, 4:14], frames) and canvas[1, 0, 3, 4] == 7
    outside = torch.ones(12, 16, dtype=torch.bool)
    outside[3:11, 4:14] = False
    for channel, value in enumerate((1, 2, 3)):
        assert torch.all(canvas[:, channel][:, outside] == value)


def test_draw_expand_ranges():
    placements = [draw_expand(np.random.default_rng(seed), 128, 160, 2.0) for seed in range(200)]
    drawn = [p for p in placements if p is not None]
    assert 0.4 < len(drawn) / len(placements) < 0.6
    for p in drawn:
        assert 128 <= p.height <= 256 and 160 <= p.width <= 320 and abs(p.height / 128 - p.width / 160) < 0.02
        assert 0 <= p.top <= p.height - 128 and 0 <= p.left <= p.width - 160
    assert max(p.width for p in drawn) > 300


def test_crop_boxes_hand_computed():
    boxes = np.array([[10, 10, 29, 29],   # centre (19.5, 19.5) inside: moved by (-5, -5)
                      [0, 0, 9, 9],       # centre (4.5, 4.5) outside: dropped
                      [30, 5, 50, 20],    # centre (40, 12.5) inside: x2 clipped to the patch's last column 39
                      [40, 5, 48, 20],    # centre x 44 = the last column: kept
                      [41, 5, 48, 20]],   # centre x 44.5: dropped
                     np.float32)
    kept, keep = crop_boxes(boxes, Crop(left=5, top=5, right=45, bottom=40, min_iou=0.3))
    np.testing.assert_array_equal(keep, [0, 2, 3])
    np.testing.assert_array_equal(kept, [[5, 5, 24, 24], [25, 0, 39, 15], [35, 0, 39, 15]])
    assert kept.dtype == np.float32 and keep.dtype == np.int64


def test_crop_that_removes_every_box_gives_a_valid_empty_target():
    kept, keep = crop_boxes(np.array([[0, 0, 9, 9]], np.float32), Crop(left=50, top=50, right=60, bottom=60,
                                                                       min_iou=0.0))
    assert kept.shape == (0, 4) and kept.dtype == np.float32 and keep.shape == (0,) and keep.dtype == np.int64
    labels = np.array([3])
    assert labels[keep].shape == (0,)


def test_draw_crop_meets_ssd_constraints():
    boxes = np.array([[10, 10, 139, 109]], np.float32)  # large enough for every mode to find patches
    areas = torch.from_numpy(boxes + np.array([0, 0, 1, 1], np.float32))
    modes = set()
    for seed in range(100):
        crop = draw_crop(np.random.default_rng(seed), boxes, 128, 160)
        if crop is None:
            continue
        modes.add(crop.min_iou)
        width, height = crop.right - crop.left, crop.bottom - crop.top
        assert 0 <= crop.left < crop.right <= 160 and 0 <= crop.top < crop.bottom <= 128
        assert width >= 0.3 * 160 - 1 and height >= 0.3 * 128 - 1
        assert 0.5 * (width - 1) <= height + 1 and height - 1 <= 2 * (width + 1)  # h / w in [0.5, 2] before flooring
        patch = torch.tensor([[crop.left, crop.top, crop.right, crop.bottom]], dtype=torch.float32)
        assert box_iou(areas, patch).min() >= crop.min_iou  # every box overlaps the patch enough
        assert len(crop_boxes(boxes, crop)[1]) >= 1  # and at least one survives
    assert set(CROP_MIN_IOUS) - {None} == modes
    empty = [draw_crop(np.random.default_rng(seed), np.zeros((0, 4)), 128, 160) for seed in range(30)]
    assert sum(crop is not None for crop in empty) >= 15  # without boxes every mode but "whole frame" crops


def test_expand_and_crop_move_every_frame_and_the_boxes_alike():
    """A white square moves 8 px right per frame; after augmentation it still does, and the key box is on it."""
    frames = []
    for k in range(3):
        array = np.zeros((48, 64, 3), np.uint8)
        array[20:26, 10 + 8 * k:16 + 8 * k] = 255
        frames.append(Image.fromarray(array))
    augment = ClipAugment(expand=2.0, crop=True, fill=(124, 116, 104))
    checked = 0
    for seed in range(40):
        out = augment(frames, np.array([[10, 20, 15, 25]], np.float32), np.random.default_rng(seed))
        assert len({a.shape for a in _arrays(out)}) == 1
        squares = [np.argwhere(a[..., 0] == 255) for a in _arrays(out)]
        if any(len(s) != 36 for s in squares):  # cropped (partly) out of some frame
            continue
        corners = [s.min(0) for s in squares]
        assert [tuple(c - corners[0]) for c in corners] == [(0, 0), (0, 8), (0, 16)]
        y, x = corners[0]
        np.testing.assert_array_equal(out.boxes, [[x, y, x + 5, y + 5]])
        checked += out.expand is not None or out.crop is not None
    assert checked >= 10


def test_still_image_and_empty_frames():
    image = Image.fromarray(_texture())
    out = ClipAugment(photometric=True, expand=1.5, crop=True)([image] * 3, np.zeros((0, 4)),
                                                                np.random.default_rng(3))
    assert out.images[0] is out.images[1] is out.images[2]  # a repeated frame stays one image
    assert out.boxes.shape == (0, 4) and out.keep.shape == (0,)


def test_all_off_draws_nothing():
    rng = np.random.default_rng(5)
    frames = [Image.fromarray(_texture())]
    out = ClipAugment()(frames, np.array([[1, 2, 3, 4]]), rng)
    assert out.images[0] is frames[0] and out.params() == {"photometric": None, "expand": None, "crop": None}
    assert rng.random() == np.random.default_rng(5).random()
    with pytest.raises(ValueError, match="expand ratio must be >= 1"):
        ClipAugment(expand=0.9)
