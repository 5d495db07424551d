"""Reading frames from disk and the clip resize rule shared by training and inference."""

from __future__ import annotations

import os

from PIL import Image


def load_frame(path: str | os.PathLike) -> Image.Image:
    """Decode an image file fully into an RGB ``PIL.Image``.

    Raises ``FileNotFoundError`` (missing file) or ``ValueError`` (unreadable, truncated or corrupt data), both
    naming ``path``. Decoding is forced here so that a bad file fails where its name is known.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"frame file not found: {path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot decode image {path}: {error}") from None


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """Scale that makes the shorter side ``min_size`` unless the longer side would exceed ``max_size``."""
    scale = min_size / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return scale


def resized_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(height, width)`` of a frame resized by ``scale`` (training and inference resize through this)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))
