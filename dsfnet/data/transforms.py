"""Clip-consistent transforms: every frame of a clip gets the same resize and the same flip (DESIGN §3)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from PIL import Image

from dsfnet.data.images import resize_scale, resized_size
from dsfnet.errors import InputError


class ClipTransform:
    """Resize a clip (shorter side ``min_size``, longer ``<= max_size``) and flip it horizontally at random.

    Frames are *not* normalised: the model subtracts its pixel mean and divides by its std itself, so that the
    same tensors feed training, evaluation and the user-facing predictor.
    """

    def __init__(self, min_size: int = 600, max_size: int = 1000, flip_prob: float = 0.5):
        self.min_size, self.max_size, self.flip_prob = min_size, max_size, flip_prob

    def __call__(self, images: list[Image.Image], boxes: np.ndarray,
                 rng: Optional[np.random.Generator] = None) -> tuple[torch.Tensor, np.ndarray, float, bool]:
        """Transform a clip.

        Args:
            images: the clip's n frames, all the same size (W, H).
            boxes: ``[k, 4]`` x1, y1, x2, y2 inclusive pixel corners in the original frames.
            rng: source of the flip decision (``None``: no flip).
        Returns:
            frames ``float32 [n, 3, H', W']`` in [0, 1], boxes ``float32 [k, 4]`` in resized-frame pixels
            (``x * scale``, clipped to the frame; flipped as ``x1' = W'-1-x2``, ``x2' = W'-1-x1``), the scale and
            whether the clip was flipped.
        """
        sizes = {image.size for image in images}
        if len(sizes) != 1:
            raise InputError(f"all frames of a clip must have the same size, got {sorted(sizes)}")
        width, height = images[0].size
        scale = resize_scale(height, width, self.min_size, self.max_size)
        new_h, new_w = resized_size(height, width, scale)
        resized = {}  # repeated frames (DET images, short snippets) are resized once
        arrays = []
        for image in images:
            if id(image) not in resized:
                resized[id(image)] = np.asarray(image.resize((new_w, new_h), Image.BILINEAR))
            arrays.append(resized[id(image)])
        frames = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * np.float32(scale)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, new_w - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, new_h - 1)
        flip = rng is not None and self.flip_prob > 0 and bool(rng.random() < self.flip_prob)
        if flip:
            frames = frames.flip(-1)
            boxes = np.stack([new_w - 1 - boxes[:, 2], boxes[:, 1], new_w - 1 - boxes[:, 0], boxes[:, 3]], axis=1)
        return frames, boxes, float(scale), flip
