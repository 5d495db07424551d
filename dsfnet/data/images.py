"""Reading frames from disk and the clip resize rule shared by training and inference."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from dsfnet.errors import InputError, InputNotFound


def load_frame(path: str | os.PathLike) -> Image.Image:
    """Decode an image file fully into an RGB ``PIL.Image``.

    Raises ``FileNotFoundError`` (missing file) or ``ValueError`` (unreadable, truncated or corrupt data), both
    naming ``path``. Decoding is forced here so that a bad file fails where its name is known. 16-bit grayscale
    (PNG) is scaled to 8 bits (PIL's own conversion clips it to 255, a white frame).
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I"):  # 16-bit ("I;16", "I;16B") or 32-bit integer grayscale
                return _integer_gray_to_rgb(image, path)
            return image.convert("RGB")
    except FileNotFoundError:
        raise InputNotFound(f"frame file not found: {path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"cannot decode image {path}: {error}") from None


def _integer_gray_to_rgb(image: Image.Image, path: str | os.PathLike) -> Image.Image:
    """A 16-bit grayscale image as 8-bit RGB: ``round(value / 257)`` maps 0..65535 onto 0..255."""
    values = np.asarray(image).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise InputError(f"cannot decode image {path}: integer pixel values outside 0..65535 (mode {image.mode})")
    gray = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")  # uint8 [H, W] is mode L


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """Scale that makes the shorter side ``min_size`` unless the longer side would exceed ``max_size``."""
    scale = min_size / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return scale


def resized_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(height, width)`` of a frame resized by ``scale`` (training and inference resize through this)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))
