"""The different-video control of the ablation (DESIGN §7): a fused model detects each held-out video with its
support frames taken from *another* video. If the fused variants' gain comes from the same video's frames (and
not from the extra capacity of the fusion modules), this control loses it.

Each test frame of video ``v`` is fused with the n−1 support frames that ``shuffled`` sampling would pick in
video ``v + 1`` (the next video of the split, cyclically), through the ``cached`` path: the same memory, the same
number of support frames and the same code as a normal evaluation; only the support frames' video differs.
"""

from __future__ import annotations

import numpy as np
import torch

from dsfnet.data.records import DatasetRecord, VideoRecord
from dsfnet.evaluation.detections import Detections
from dsfnet.inference.geometry import Geometry
from dsfnet.data.sampling import shuffled_support_order
from dsfnet.inference.video_io import FrameListSource


def _conv4(model: torch.nn.Module, geometry: Geometry, path: str) -> torch.Tensor:
    """Raw conv4 ``[1, d, h, w]`` of one frame file (read as the predictor reads dataset frames)."""
    image = FrameListSource([path], name=path).frame(0)
    return model.conv4(geometry.prepare(image, torch.device("cpu")))


def _support_memory(model: torch.nn.Module, video: VideoRecord, geometry: Geometry, n: int, seed: int):
    """The memory of the n−1 frames that shuffled sampling takes as support in ``video``."""
    frames = shuffled_support_order(len(video.frames), seed)[: n - 1]
    support = torch.cat([_conv4(model, geometry, video.frames[t].image_path) for t in frames])
    return model.support_memory(support, geometry.size)


def other_video_detections(model: torch.nn.Module, dataset: DatasetRecord, num_frames: int, min_size: int,
                           max_size: int, seed: int = 0) -> Detections:
    """Detections of every frame of ``dataset`` (split positions) with support from the next video.

    Args:
        model: a fused DSFNet variant (eval mode is set here); frames of every video must share one size.
        num_frames: n of the clips (test frame + n−1 support frames), as ``test.num_frames``.
        min_size, max_size: the resize of ``config.data``.
    """
    videos = dataset.videos
    first = videos[0].frames[0]
    geometry = Geometry.of(first.height, first.width, min_size, max_size)
    parts, position = [], 0
    model.eval()
    with torch.inference_mode():
        for index, video in enumerate(videos):
            memory = _support_memory(model, videos[(index + 1) % len(videos)], geometry, num_frames, seed)
            for frame in video.frames:
                found = model.detect_cached(_conv4(model, geometry, frame.image_path), geometry.size, memory)
                parts.append(Detections.for_frame(position, geometry.to_original(found["boxes"]).astype(np.float64),
                                                  found["labels"].numpy().astype(np.int64),
                                                  found["scores"].float().numpy().astype(np.float64)))
                position += 1
    return Detections.concatenate(parts)
