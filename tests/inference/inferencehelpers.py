"""Helpers of the inference tests: tiny models and checkpoints, small videos written and decoded with PyAV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO, Iterator

import av
import numpy as np
import torch

from dsfnet.config import load_config
from dsfnet.engine.checkpoint import save_checkpoint, training_checkpoint
from dsfnet.models.build import build_model

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"


def tiny(*overrides: str):
    return load_config(TINY, list(overrides))


def randomise_fusion(model: torch.nn.Module, std: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Give the zero-initialised value projections (θ, γ) random weights, so fusion changes the output, and
    spread the classifier so that scores are not all ~1/(C+1) (near-ties would make comparisons fragile)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name in ("theta", "gamma"):
                layer = getattr(module, name, None)
                if isinstance(layer, torch.nn.Module) and hasattr(layer, "weight"):
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
        classifier = model.box_head.cls_score
        classifier.weight.copy_(torch.randn(classifier.weight.shape, generator=generator))
    return model.eval()


def make_model(variant: str = "dsfnet", seed: int = 0, *overrides: str):
    config = tiny(f"model.variant={variant}", *overrides)
    torch.manual_seed(seed)
    return randomise_fusion(build_model(config.model), seed=seed), config


def write_checkpoint(path: Path, variant: str = "dsfnet", *overrides: str) -> Path:
    model, config = make_model(variant, 0, *overrides)
    return save_checkpoint(path, training_checkpoint(model, config, iteration=0))


def moving_square(index: int, width: int, height: int) -> np.ndarray:
    """A frame with a bright square moving over a gradient."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.linspace(30, 120, width, dtype=np.uint8)[None]
    image[..., 2] = np.linspace(60, 140, height, dtype=np.uint8)[:, None]
    side = max(4, min(width, height) // 3)
    x = (2 * index) % max(1, width - side)
    y = (index // 2) % max(1, height - side)
    image[y:y + side, x:x + side] = (240, 220, 40)
    return image


def write_video(path: Path, frames: int, width: int = 64, height: int = 48, codec: str = "libx264",
                pix_fmt: str = "yuv420p", fps: int = 25, options: dict | None = None, noise: bool = False) -> Path:
    """Encode ``frames`` synthetic frames with PyAV (``pix_fmt`` gray -> single-channel frames; ``noise``: random
    pixels, which compress badly, so that every frame has a sizeable packet)."""
    rng = np.random.default_rng(0)
    container = av.open(str(path), "w", options=options or {})
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    container.start_encoding()
    for index in range(frames):
        image = moving_square(index, width, height)
        if noise:
            image = rng.integers(0, 256, image.shape, dtype=np.uint8)
        if pix_fmt == "gray":
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[..., 1]), format="gray")
        else:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def decode_all(path: Path) -> tuple[int, int, int]:
    """(frame count, width, height) of a video, decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.width, stream.height


def mpegts_frames(stream: BinaryIO, pace: float = 0.0, width: int = 64, height: int = 48,
                  noise: bool = False) -> Iterator[int]:
    """Send a live H.264 MPEG-TS stream (as a camera would) into the binary file ``stream``, one frame at a time,
    ``pace`` seconds apart: yields the number of frames sent after each one (``moving_square`` frames, or random
    pixels with ``noise``). Closing the generator ends the stream properly."""
    rng = np.random.default_rng(0)
    container = av.open(stream, "w", format="mpegts")
    video = container.add_stream("libx264", rate=25, options={"tune": "zerolatency"})
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    try:
        sent = 0
        while True:
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8) if noise else \
                moving_square(sent, width, height)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
            stream.flush()
            sent += 1
            yield sent
            time.sleep(pace)
    finally:
        for packet in video.encode():
            container.mux(packet)
        container.close()
