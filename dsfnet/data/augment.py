"""SSD-style augmentation of a training clip, as SELSA trains (the paper's data recipe, [53]): photometric
distortion, random expand and min-IoU random crop, applied before the clip's resize and flip.

One set of random parameters is drawn per clip, from the clip's own ``numpy.random.Generator`` (seed, epoch,
sample index), and applied to every frame alike, so support frames stay aligned with the key frame. Only the key
frame has boxes; they move with the pixels. Frames are ``uint8 [n, 3, H, W]`` tensors here; boxes are
``[k, 4]`` x1, y1, x2, y2 *inclusive* pixel corners (pixel ``x`` spans ``[x, x + 1)``), as everywhere in
``dsfnet.data``.

Departures from SSD / mmdetection:

- contrast, saturation and hue are torchvision's (``adjust_contrast`` blends with the frame's mean grey,
  ``adjust_saturation`` with its grey image, ``adjust_hue`` rotates hue) rather than SSD's own HSV arithmetic, as
  the project prefers maintained library ops; brightness stays SSD's *additive* delta (torchvision's
  ``adjust_brightness`` multiplies). SSD's random channel swap is left out (issue 23 asks for the four steps).
- a crop whose 50 trials all fail leaves the clip uncropped (SSD draws a new minimum IoU and tries again,
  unboundedly).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.ops import box_iou

from dsfnet.errors import InputError

if TYPE_CHECKING:
    from dsfnet.config import AugmentConfig

__all__ = ["ClipAugment", "Crop", "Expand", "Photometric", "crop_boxes", "distort", "draw_crop", "draw_expand",
           "draw_photometric", "expand"]

STEP_PROB = 0.5  # each photometric step, and the expand, happens with this probability (SSD)
BRIGHTNESS_DELTA = 32.0  # uint8 levels, added
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18.0  # degrees
#: SSD's crop modes: None keeps the whole frame, 0.0 is an unconstrained patch, the others a minimum IoU with
#: every key-frame box.
CROP_MIN_IOUS: tuple[Optional[float], ...] = (None, 0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
CROP_MIN_SCALE = 0.3  # of each side
CROP_ASPECT = (0.5, 2.0)  # height / width of the patch
CROP_TRIALS = 50


@dataclass(frozen=True)
class Photometric:
    """One clip's colour changes; ``None`` = step skipped. ``brightness`` in uint8 levels, ``hue`` in degrees."""

    brightness: Optional[float]
    contrast: Optional[float]
    saturation: Optional[float]
    hue: Optional[float]
    contrast_first: bool  # contrast before saturation / hue (else after), as SSD picks at random


@dataclass(frozen=True)
class Expand:
    """The clip placed at (``left``, ``top``) of a ``height x width`` canvas of the pixel mean."""

    left: int
    top: int
    height: int
    width: int


@dataclass(frozen=True)
class Crop:
    """The patch kept: columns ``left .. right - 1``, rows ``top .. bottom - 1``; ``min_iou`` its crop mode."""

    left: int
    top: int
    right: int
    bottom: int
    min_iou: float


def draw_photometric(rng: np.random.Generator) -> Photometric:
    """SSD's photometric parameters: each step with probability 0.5, its value uniform in its range."""
    def maybe(low: float, high: float) -> Optional[float]:
        return float(rng.uniform(low, high)) if rng.random() < STEP_PROB else None

    brightness = maybe(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    contrast_first = bool(rng.random() < 0.5)
    return Photometric(brightness=brightness, contrast=maybe(*CONTRAST_RANGE), saturation=maybe(*SATURATION_RANGE),
                       hue=maybe(-HUE_DELTA, HUE_DELTA), contrast_first=contrast_first)


def distort(frames: torch.Tensor, params: Photometric) -> torch.Tensor:
    """Apply ``params`` to every frame of ``frames`` (``uint8 [n, 3, H, W]``); returns ``uint8 [n, 3, H, W]``.

    Works in float in [0, 1] and rounds once at the end. Contrast uses each frame's own mean grey (torchvision),
    so equal frames stay equal and frames that are shifted copies of each other stay shifted copies.
    """
    x = frames.float().div_(255.0)
    if params.brightness is not None:
        x = x.add_(params.brightness / 255.0).clamp_(0.0, 1.0)
    contrast = [(TF.adjust_contrast, params.contrast)]
    colour = [(TF.adjust_saturation, params.saturation),
              (TF.adjust_hue, None if params.hue is None else params.hue / 360.0)]  # a fraction of the circle
    for adjust, value in (contrast + colour if params.contrast_first else colour + contrast):
        if value is not None:
            x = adjust(x, value)
    return x.mul_(255.0).round_().to(torch.uint8)


def draw_expand(rng: np.random.Generator, height: int, width: int, max_ratio: float) -> Optional[Expand]:
    """With probability 0.5, a canvas ``ratio`` times the frame (``ratio`` uniform in ``[1, max_ratio]``) and a
    uniform position of the frame on it (mmdetection's ``Expand``); ``None`` otherwise."""
    if rng.random() >= STEP_PROB:
        return None
    ratio = rng.uniform(1.0, max_ratio)
    left = int(rng.uniform(0.0, width * ratio - width))
    top = int(rng.uniform(0.0, height * ratio - height))
    # max(): the frame always fits, whatever the float rounding of ratio * side
    return Expand(left=left, top=top, height=max(int(height * ratio), top + height),
                  width=max(int(width * ratio), left + width))


def expand(frames: torch.Tensor, boxes: np.ndarray, placement: Expand,
           fill: Sequence[int]) -> tuple[torch.Tensor, np.ndarray]:
    """``frames`` ``uint8 [n, 3, H, W]`` pasted on a ``fill``-coloured canvas ``[n, 3, height, width]``; boxes
    ``[k, 4]`` shifted by (left, top)."""
    n, channels, height, width = frames.shape
    canvas = torch.tensor(fill, dtype=torch.uint8).view(1, channels, 1, 1).repeat(n, 1, placement.height,
                                                                                  placement.width)
    canvas[:, :, placement.top:placement.top + height, placement.left:placement.left + width] = frames
    offset = np.array([placement.left, placement.top] * 2, np.float32)
    return canvas, boxes + offset


def _centres_inside(boxes: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """``bool [k, m]``: box ``i``'s centre ``((x1 + x2) / 2, (y1 + y2) / 2)`` lies on the pixels of patch ``j``
    (``[left, top, right, bottom]``), i.e. in ``[left, right - 1] x [top, bottom - 1]`` (SSD keeps a box whose
    centre is inside the patch)."""
    cx, cy = ((boxes[:, 0] + boxes[:, 2]) / 2)[:, None], ((boxes[:, 1] + boxes[:, 3]) / 2)[:, None]
    left, top, right, bottom = patches.T[:, None, :]
    return (left <= cx) & (cx <= right - 1) & (top <= cy) & (cy <= bottom - 1)


def crop_boxes(boxes: np.ndarray, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
    """The boxes kept by ``crop`` (centre inside the patch), in patch pixels, clipped to the patch.

    Returns ``float32 [k', 4]`` and the kept boxes' indices ``int64 [k']`` into ``boxes`` (for their labels);
    ``k' = 0`` gives a ``[0, 4]`` array, a valid empty target.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    patch = np.array([[crop.left, crop.top, crop.right, crop.bottom]])
    keep = np.flatnonzero(_centres_inside(boxes, patch)[:, 0])
    kept = boxes[keep] - np.array([crop.left, crop.top] * 2, np.float32)
    kept[:, 0::2] = kept[:, 0::2].clip(0, crop.right - crop.left - 1)
    kept[:, 1::2] = kept[:, 1::2].clip(0, crop.bottom - crop.top - 1)
    return kept, keep.astype(np.int64)


def draw_crop(rng: np.random.Generator, boxes: np.ndarray, height: int, width: int) -> Optional[Crop]:
    """SSD's min-IoU random crop (mmdetection's ``MinIoURandomCrop``): pick a mode from :data:`CROP_MIN_IOUS`,
    then the first of 50 random patches (sides uniform in [0.3, 1] of the frame's, height / width in [0.5, 2],
    uniform position) that overlaps every box with IoU >= the mode's minimum and holds at least one box centre.

    A frame without boxes accepts the first patch of valid shape. ``None``: no crop (mode None, or no patch
    passed). The 50 trials are drawn at once (one IoU computation instead of 50 small ones).
    """
    min_iou = CROP_MIN_IOUS[int(rng.integers(len(CROP_MIN_IOUS)))]
    if min_iou is None:
        return None
    w = rng.uniform(CROP_MIN_SCALE * width, width, CROP_TRIALS)
    h = rng.uniform(CROP_MIN_SCALE * height, height, CROP_TRIALS)
    left, top = rng.uniform(0.0, 1.0, CROP_TRIALS) * (width - w), rng.uniform(0.0, 1.0, CROP_TRIALS) * (height - h)
    patches = np.stack([left.astype(int), top.astype(int), np.minimum((left + w).astype(int), width),
                        np.minimum((top + h).astype(int), height)], axis=1)
    aspect = h / w
    ok = (CROP_ASPECT[0] <= aspect) & (aspect <= CROP_ASPECT[1]) & np.all(patches[:, 2:] > patches[:, :2], axis=1)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes):
        # boxes as the continuous areas [x1, y1, x2 + 1, y2 + 1], comparable with the patches
        areas = torch.from_numpy(boxes + np.array([0, 0, 1, 1], np.float32))
        ok &= box_iou(areas, torch.from_numpy(patches).float()).min(0).values.numpy() >= min_iou
        ok &= _centres_inside(boxes, patches).any(0)
    passed = np.flatnonzero(ok)
    if not len(passed):
        return None
    crop_left, crop_top, crop_right, crop_bottom = (int(v) for v in patches[passed[0]])
    return Crop(left=crop_left, top=crop_top, right=crop_right, bottom=crop_bottom, min_iou=min_iou)


@dataclass(frozen=True)
class Augmented:
    """:class:`ClipAugment`'s output: the frames (same identities as the input's: a repeated frame stays one
    object), the key frame's boxes ``float32 [k', 4]``, the indices ``int64 [k']`` of the boxes kept, and the
    parameters drawn (``None`` for a step that did not happen)."""

    images: list[Image.Image]
    boxes: np.ndarray
    keep: np.ndarray
    photometric: Optional[Photometric]
    expand: Optional[Expand]
    crop: Optional[Crop]

    def params(self) -> dict:
        """The parameters as plain values (for a clip's ``meta``)."""
        return {name: None if value is None else dataclasses.asdict(value)
                for name, value in (("photometric", self.photometric), ("expand", self.expand), ("crop", self.crop))}


class ClipAugment:
    """Photometric distortion, random expand and random crop of a clip, in that order (SSD's), one draw per clip.

    Args:
        photometric: SSD's brightness / contrast / saturation / hue distortion.
        expand: the random expand's largest canvas ratio (``1`` = off).
        crop: SSD's min-IoU random crop.
        fill: the expand canvas's colour, uint8 RGB (the model's pixel mean).
    """

    def __init__(self, photometric: bool = False, expand: float = 1.0, crop: bool = False,
                 fill: Sequence[int] = (124, 116, 104)):
        if expand < 1:
            raise InputError(f"the expand ratio must be >= 1 (1 = off), got {expand}")
        self.photometric, self.max_ratio, self.crop = photometric, float(expand), crop
        self.fill = tuple(int(v) for v in fill)

    @classmethod
    def from_config(cls, augment: AugmentConfig, pixel_mean: Sequence[float]) -> "ClipAugment":
        """From ``config.data.augment``; the canvas takes ``config.model.pixel_mean`` (in [0, 1]) as uint8."""
        return cls(augment.photometric, augment.expand, augment.crop,
                   fill=[int(round(255 * min(max(v, 0.0), 1.0))) for v in pixel_mean])

    @property
    def enabled(self) -> bool:
        return self.photometric or self.max_ratio > 1 or self.crop

    def __call__(self, images: list[Image.Image], boxes: np.ndarray, rng: np.random.Generator) -> Augmented:
        """Augment a clip whose n frames share one size; ``boxes`` ``[k, 4]`` are the key frame's.

        Draws nothing from ``rng`` when every step is off (the clip and the later draws are then unchanged).
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        keep = np.arange(len(boxes), dtype=np.int64)
        if not self.enabled:
            return Augmented(list(images), boxes, keep, None, None, None)
        unique = list({id(image): image for image in images}.values())  # a repeated frame is augmented once
        frames = torch.from_numpy(np.stack([np.asarray(image) for image in unique])).permute(0, 3, 1, 2)
        photometric = draw_photometric(rng) if self.photometric else None
        if photometric is not None:
            frames = distort(frames, photometric)
        placement = draw_expand(rng, frames.shape[2], frames.shape[3], self.max_ratio) if self.max_ratio > 1 else None
        if placement is not None:
            frames, boxes = expand(frames, boxes, placement, self.fill)
        crop = draw_crop(rng, boxes, frames.shape[2], frames.shape[3]) if self.crop else None
        if crop is not None:
            frames = frames[:, :, crop.top:crop.bottom, crop.left:crop.right]
            boxes, keep = crop_boxes(boxes, crop)
        arrays = frames.permute(0, 2, 3, 1).contiguous().numpy()
        augmented = {id(image): Image.fromarray(array) for image, array in zip(unique, arrays)}
        return Augmented([augmented[id(image)] for image in images], boxes, keep, photometric, placement, crop)
