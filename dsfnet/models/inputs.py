"""Validation of the detector's inputs: clips and key-frame targets, with messages that say what is wrong."""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

from dsfnet.errors import InputError


def _as_clip(item: Union[Tensor, Sequence[Tensor]], index: int) -> Tensor:
    if isinstance(item, Tensor):
        if item.dim() != 4:
            raise InputError(f"clip {index} must be a [n, 3, H, W] tensor, got shape {tuple(item.shape)}")
        return item
    frames = list(item)
    if not frames:
        raise InputError(f"clip {index} is empty: a clip needs at least one frame")
    for frame in frames:
        if not isinstance(frame, Tensor) or frame.dim() != 3:
            raise InputError(f"clip {index}: each frame must be a [3, H, W] tensor")
    sizes = {tuple(frame.shape) for frame in frames}
    if len(sizes) > 1:
        raise InputError(f"clip {index}: all frames of a clip must have the same size, got {sorted(sizes)}")
    return torch.stack(frames)


def as_clips(clips, key: int) -> list[Tensor]:
    """Normalise the accepted input forms to a list of ``[n, 3, H, W]`` float tensors and check them."""
    if isinstance(clips, Tensor):
        if clips.dim() == 4:
            clips = [clips]
        elif clips.dim() == 5:
            clips = list(clips)
        else:
            raise InputError(f"expected a clip [n, 3, H, W] or a batch [B, n, 3, H, W], got shape {tuple(clips.shape)}")
    clips = [_as_clip(item, index) for index, item in enumerate(clips)]
    if not clips:
        raise InputError("the batch is empty: pass at least one clip")
    for index, clip in enumerate(clips):
        frames, channels, height, width = clip.shape
        if frames == 0:
            raise InputError(f"clip {index} is empty: a clip needs at least one frame")
        if channels != 3:
            raise InputError(f"clip {index} has {channels} channels; frames must be RGB [3, H, W]")
        if height < 1 or width < 1:
            raise InputError(f"clip {index} has an empty image of size {height}x{width}")
        if not clip.is_floating_point():
            raise InputError(f"clip {index} has dtype {clip.dtype}; pass float frames with values in [0, 1]")
        if not -frames <= key < frames:
            raise InputError(f"key frame index {key} is out of range for clip {index} of {frames} frames")
    return clips


def check_targets(targets, clips: list[Tensor], num_classes: int) -> list[dict]:
    """Check key-frame targets (one dict per clip) against the clips' sizes and the class count."""
    if isinstance(targets, dict):
        targets = [targets]
    targets = list(targets)
    if len(targets) != len(clips):
        raise InputError(f"got {len(targets)} targets for {len(clips)} clips; give one target dict per clip")
    checked = []
    for index, (target, clip) in enumerate(zip(targets, clips)):
        if "boxes" not in target or "labels" not in target:
            raise InputError(f"target {index} must have 'boxes' and 'labels'")
        boxes = torch.as_tensor(target["boxes"], dtype=clip.dtype, device=clip.device)
        labels = torch.as_tensor(target["labels"], dtype=torch.int64, device=clip.device)
        if boxes.dim() != 2 or boxes.shape[1] != 4:
            raise InputError(f"target {index}: boxes must have shape [k, 4], got {tuple(boxes.shape)}")
        if labels.shape != (boxes.shape[0],):
            raise InputError(f"target {index}: {labels.numel()} labels for {boxes.shape[0]} boxes")
        height, width = clip.shape[-2:]
        if boxes.numel():
            if bool((boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
                raise InputError(f"target {index}: a box has x2 < x1 or y2 < y1: {boxes.tolist()}")
            if bool((boxes[:, :2] < 0).any() or (boxes[:, 2] > width).any() or (boxes[:, 3] > height).any()):
                raise InputError(f"target {index}: a box lies outside the {width}x{height} image: {boxes.tolist()}")
            if bool(((labels < 1) | (labels > num_classes)).any()):
                raise InputError(f"target {index}: labels must be in 1..{num_classes}, got {labels.tolist()}")
        checked.append({"boxes": boxes, "labels": labels})
    return checked
