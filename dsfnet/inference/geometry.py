"""How a video's frames are resized for the network, as an explicit value (one scale per video)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dsfnet.data.images import resize_scale, resized_size
from dsfnet.errors import InputError


@dataclass(frozen=True)
class Geometry:
    """The resize of a video: ``original`` and network-input ``size`` as (H, W), and the ``scale`` between them.

    Frames are resized exactly as the training transform resizes clips (``dsfnet.data.transforms.ClipTransform``:
    shorter side ``min_size``, longer side ≤ ``max_size``, PIL bilinear on the uint8 frame), and boxes map back
    with one division (training maps boxes with ``x * scale``).
    """

    original: tuple[int, int]
    size: tuple[int, int]
    scale: float

    @classmethod
    def of(cls, height: int, width: int, min_size: int, max_size: int) -> "Geometry":
        scale = resize_scale(height, width, min_size, max_size)
        return cls((height, width), resized_size(height, width, scale), float(scale))

    def prepare(self, image: np.ndarray, device: torch.device) -> Tensor:
        """RGB ``uint8 [H, W, 3]`` -> float ``[1, 3, h, w]`` in [0, 1] on ``device``; ``ValueError`` for a frame
        of another size than the video's."""
        height, width = image.shape[:2]
        if (height, width) != self.original:
            raise InputError(f"frame size {width}x{height} differs from the video's first frame "
                             f"{self.original[1]}x{self.original[0]}")
        if self.size != self.original:
            image = np.asarray(Image.fromarray(image).resize((self.size[1], self.size[0]), Image.BILINEAR))
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
        if device.type == "cuda":
            # from pinned memory the copy is queued behind the GPU's work instead of waiting for it to finish: where
            # frames go through the backbone one after another (the support frames' prefetch, decoding ahead),
            # the next frame is decoded and resized while the GPU still runs this one
            tensor = tensor.pin_memory()
        tensor = tensor.to(device, non_blocking=True)
        return tensor.permute(2, 0, 1)[None].float().div_(255.0)

    def to_original(self, boxes: Tensor) -> np.ndarray:
        """Boxes ``[k, 4]`` in network-input pixels -> ``float32 [k, 4]`` in the original frame's pixels."""
        return (boxes.float().cpu() / self.scale).numpy().astype(np.float32).reshape(-1, 4)
