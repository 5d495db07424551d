"""Training clips as a torch ``Dataset``, their collate function and the seeding of loader workers.

A sample is a key frame plus ``num_support`` support frames drawn from the same snippet (a DET image repeated
``1 + num_support`` times), optionally augmented as one clip by :class:`~dsfnet.data.augment.ClipAugment`, then
resized and flipped as one clip by :class:`~dsfnet.data.transforms.ClipTransform`.
All randomness of sample ``i`` comes from ``numpy.random.default_rng([seed, epoch, i])``, so a clip does not
depend on which worker builds it or in which order.
"""

from __future__ import annotations

import logging
import random
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from dsfnet.data.augment import ClipAugment
from dsfnet.data.images import load_frame
from dsfnet.data.records import DatasetRecord
from dsfnet.data.sampling import train_support_frames
from dsfnet.data.transforms import ClipTransform
from dsfnet.errors import InputError

logger = logging.getLogger(__name__)

#: With ``skip_bad``, a sample whose images cannot be read is replaced by the next one, at most this many times.
MAX_SKIPS = 10


class TrainClipDataset(Dataset):
    """Training clips around the key frames of one or more datasets.

    ``dataset[i]`` is a dict:

    - ``"frames"``: ``float32 [1 + num_support, 3, H, W]`` in [0, 1], key frame first (not normalised: the
      model normalises internally);
    - ``"target"``: ``{"boxes": float32 [k, 4]`` x1, y1, x2, y2 in resized-frame pixels, ``"labels": int64 [k]}``
      of the key frame;
    - ``"meta"``: ``{"video": str, "frame_indices": list[int]`` (``frame_index`` of each clip frame),
      ``"scale": float, "flip": bool, "orig_size": (h, w), "augment": dict | None}`` (``scale`` applies to the
      augmented frames; ``augment``: the parameters drawn, :meth:`~dsfnet.data.augment.Augmented.params`,
      ``None`` without ``augment``).

    ``augment`` runs before ``transform``; boxes of the key frame that it crops out are dropped with their labels.
    """

    def __init__(self, datasets: list[DatasetRecord], num_support: int, transform: ClipTransform, seed: int,
                 skip_bad: bool = False, augment: Optional[ClipAugment] = None):
        if num_support < 0:
            raise InputError(f"num_support must be >= 0, got {num_support}")
        self.datasets, self.num_support, self.transform = datasets, num_support, transform
        self.seed, self.skip_bad, self.epoch = seed, skip_bad, 0
        self.augment = augment if augment is not None and augment.enabled else None
        self.keys = [(d, v, f) for d, dataset in enumerate(datasets) for v, f in dataset.training_keys()]

    def set_epoch(self, epoch: int) -> None:
        """Draw new support frames and flips for ``epoch`` (call before creating the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict:
        for attempt in range(MAX_SKIPS + 1):
            sample = (index + attempt) % len(self.keys)
            try:
                return self._clip(sample)
            except (FileNotFoundError, ValueError) as error:
                if not self.skip_bad or attempt == MAX_SKIPS:
                    raise
                logger.warning("skipping %s", error)
        raise AssertionError("unreachable")

    def _clip(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        d, v, f = self.keys[index]
        video = self.datasets[d].videos[v]
        if video.is_still_image:
            positions = [f] * (1 + self.num_support)
        else:
            positions = [f] + train_support_frames(len(video.frames), f, self.num_support, rng)
        decoded: dict[int, object] = {}
        for position in positions:
            if position not in decoded:
                frame = video.frames[position]
                try:
                    decoded[position] = load_frame(frame.image_path)
                except (FileNotFoundError, ValueError) as error:
                    raise type(error)(f"training sample {index} (video {video.name}, frame {frame.frame_index}): "
                                      f"{error}") from None
        key = video.frames[f]
        images, boxes, labels, params = [decoded[p] for p in positions], key.boxes, np.asarray(key.labels), None
        if self.augment is not None:
            augmented = self.augment(images, boxes, rng)
            images, boxes, params = augmented.images, augmented.boxes, augmented.params()
            labels = labels[augmented.keep]
        frames, boxes, scale, flip = self.transform(images, boxes, rng)
        return {
            "frames": frames,
            "target": {"boxes": torch.from_numpy(np.ascontiguousarray(boxes, np.float32)),
                       "labels": torch.as_tensor(labels, dtype=torch.int64)},
            "meta": {"video": video.name, "frame_indices": [video.frames[p].frame_index for p in positions],
                     "scale": scale, "flip": flip, "orig_size": (key.height, key.width), "augment": params},
        }


def collate_clips(batch: list[dict]) -> dict:
    """Batch clips of different sizes as lists (no padding; the model pads):
    ``{"clips": [Tensor[n, 3, H_i, W_i]], "targets": [dict], "metas": [dict]}``."""
    return {"clips": [item["frames"] for item in batch], "targets": [item["target"] for item in batch],
            "metas": [item["meta"] for item in batch]}


def worker_init_fn(worker_id: int) -> None:
    """Seed ``random`` and ``numpy``'s global state from the worker's torch seed (itself derived from the
    loader's seeded generator), for any library code that draws from them."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
