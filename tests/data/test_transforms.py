"""Clip transform: one scale and one flip for all frames, boxes moved with the pixels; frame loading errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dsfnet.data.images import load_frame, resize_scale
from dsfnet.data.transforms import ClipTransform


class AlwaysFlip:
    def random(self):
        return 0.0


def test_resize_scale():
    assert resize_scale(480, 640, 600, 1000) == 1.25
    assert resize_scale(300, 1200, 600, 1000) == pytest.approx(1000 / 1200)  # longer side capped
    assert resize_scale(128, 160, 128, 1000) == 1.0


def _clip():
    base = np.zeros((40, 50, 3), np.uint8)
    base[10:20, 0:5] = 255  # a white block at the left border of frame 0
    other = np.full((40, 50, 3), 60, np.uint8)
    return [Image.fromarray(base), Image.fromarray(other)]


def test_resize_without_flip():
    frames, boxes, scale, flip = ClipTransform(80, 1000, flip_prob=0.0)(_clip(), np.array([[0, 10, 4, 19]]),
                                                                        np.random.default_rng(0))
    assert frames.shape == (2, 3, 80, 100) and frames.dtype == torch.float32 and not flip and scale == 2.0
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    np.testing.assert_allclose(boxes, [[0, 20, 8, 38]])
    assert frames[0, :, 25, 2].min() > 0.9 and frames[1, :, 25, 2].max() < 0.3  # frames kept in order


def test_flip_applies_to_all_frames_and_boxes():
    frames, boxes, scale, flip = ClipTransform(40, 1000, flip_prob=0.5)(_clip(), np.array([[0, 10, 4, 19],
                                                                                           [45, 0, 49, 39]]),
                                                                        AlwaysFlip())
    assert flip and scale == 1.0 and frames.shape == (2, 3, 40, 50)
    np.testing.assert_array_equal(boxes, [[45, 10, 49, 19], [0, 0, 4, 39]])  # x1' = W-1-x2, x2' = W-1-x1
    assert frames[0, 0, 15, 47] == 1.0 and frames[0, 0, 15, 2] == 0.0  # the block moved to the right border
    assert torch.all(frames[1] == frames[1, 0, 0, 0])


def test_boxes_clipped_and_mixed_sizes_rejected():
    _, boxes, _, _ = ClipTransform(40, 1000, 0.0)(_clip(), np.array([[-3, 0, 60, 45]]))
    np.testing.assert_array_equal(boxes, [[0, 0, 49, 39]])
    with pytest.raises(ValueError, match="same size"):
        ClipTransform()([Image.new("RGB", (10, 10)), Image.new("RGB", (12, 10))], np.zeros((0, 4)))


def test_load_frame_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.JPEG"):
        load_frame(tmp_path / "missing.JPEG")
    corrupt = tmp_path / "corrupt.JPEG"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(ValueError, match="corrupt.JPEG"):
        load_frame(corrupt)
    garbage = tmp_path / "garbage.JPEG"
    garbage.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="garbage.JPEG"):
        load_frame(garbage)
    gray = tmp_path / "gray.png"
    Image.new("L", (5, 4), 7).save(gray)
    assert load_frame(gray).mode == "RGB" and load_frame(gray).size == (5, 4)
