"""Synthetic ImageNet VID: a small dataset in the exact real layout, for tests, the demo and the benchmarks.

``generate_synthetic_vid(out, num_videos=40, seed=0)`` writes (DESIGN §5, §7)::

    out/Data/VID/{train,val}/<snippet>/%06d.JPEG       Annotations/VID/{train,val}/<snippet>/%06d.xml
    out/Data/DET/train/<dir>/<stem>.JPEG               Annotations/DET/train/<dir>/<stem>.xml
    out/ImageSets/{VID_train_15frames, DET_train_30classes, VID_val_videos, VID_val_frames}.txt

Content, chosen so that a single frame is sometimes ambiguous while other frames of the same video are not:

- Six real VID classes (airplane, bird, car, dog, horse, zebra), told apart by *shape and texture*: each class
  has its own silhouette and pattern, painted in two random colours per object (colour is no cue).
- 1-3 objects per video, ~25-60 px, over a textured background. Each object moves with one of three speeds,
  assigned in turn so that the slow / medium / fast motion groups of DESIGN §6 are all populated (roughly a
  third each, measured by motion IoU); fast objects also change scale. ``motion_groups`` keeps a subset of the
  speeds (e.g. a benchmark without fast objects).
- Transient degradations in ~40 % of the frames of each object, in runs of 1-4 frames, strong enough to erase
  the class texture in that frame: 13-px motion blur along the motion, defocus (Gaussian radius 2.5-4 px), low
  contrast (85 % local background), occlusion of 45-70 % of the box by a patch of background texture, or a rare
  pose (strong rotation or aspect change). Such objects get ``<degraded>1</degraded>`` (and occlusion ``<occluded>1``) in
  their XML ``<object>``; the VID reader reads this layout like the real one.
- A few DET-style still images; images with two classes are listed twice in ``DET_train_30classes.txt``, which
  has no trailing newline, like the real file.

Everything is drawn from ``numpy.random.default_rng([seed, part, index])``: the same seed gives the same bytes,
and a video does not depend on how many others are generated.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, ImageFilter

from dsfnet.atomic import replaced_directory
from dsfnet.data.classes import VID_CLASSES
from dsfnet.errors import InputError

#: seed of held-out synthetic videos (``dsfnet demo``): the bundled checkpoints were trained on seed 0
HELD_OUT_SEED = 2020

#: The synthetic classes (real VID names, so their wnids and label indices are the real ones).
SYNTH_CLASSES = ("airplane", "bird", "car", "dog", "horse", "zebra")
#: Width / height of each class's silhouette.
_ASPECT = {"airplane": 1.4, "bird": 1.2, "car": 1.8, "dog": 1.4, "horse": 1.15, "zebra": 1.0}
#: Speed per frame as a fraction of the object's size: slow stays above 0.9 motion IoU, fast below 0.7.
_SPEED = {"slow": (0.0, 0.004), "medium": (0.012, 0.02), "fast": (0.045, 0.07)}
#: Amplitude of the periodic scale change.
_SCALE_SWING = {"slow": 0.0, "medium": 0.04, "fast": 0.25}
#: The motion speeds, which a video's objects take in turn (``motion_groups`` of :func:`generate_synthetic_vid`).
MOTION_SPEEDS = ("slow", "medium", "fast")
_DEGRADATIONS = ("motion_blur", "defocus", "low_contrast", "occlusion", "rare_pose")
_DEGRADATION_WEIGHTS = (0.25, 0.25, 0.15, 0.2, 0.15)
_SPRITE = 64  # canonical sprite height in pixels
_WNID = dict(VID_CLASSES)
# memory to render one frame, per pixel: measured 60-90 bytes (float64 noise, float32 canvases, the JPEG encoder)
_BYTES_PER_PIXEL = 100
_JPEG_MAX_SIDE = 65500


# ------------------------------------------------------------------------------------------- shapes and textures


def _silhouette(name: str, h: int, w: int) -> np.ndarray:
    """Mask ``float32 [h, w]`` in {0, 1} of the class's shape."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (x + 0.5) / w, (y + 0.5) / h  # 0..1 across the box
    if name == "airplane":  # fuselage + swept wings + tail fin
        mask = (abs(v - 0.5) < 0.12) | ((abs(u - 0.45) < 0.1 + 0.12 * abs(v - 0.5)) & (abs(v - 0.5) < 0.5)) \
            | ((u < 0.12) & (abs(v - 0.5) < 0.3))
    elif name == "bird":  # arrow head pointing right, notched tail
        mask = (abs(v - 0.5) < 0.5 * u) & ~((u < 0.35) & (abs(v - 0.5) < 0.15))
    elif name == "car":  # body, cabin, two wheels
        body = (v > 0.4) & (v < 0.82)
        cabin = (v > 0.1) & (v <= 0.4) & (u > 0.25 + 0.3 * (0.4 - v)) & (u < 0.75 - 0.3 * (0.4 - v))
        wheels = ((u - 0.25) ** 2 * (w / h) ** 2 + (v - 0.82) ** 2 < 0.028) | \
            ((u - 0.75) ** 2 * (w / h) ** 2 + (v - 0.82) ** 2 < 0.028)
        mask = body | cabin | wheels
    elif name == "dog":  # oval body, round head top-right, tail
        body = ((u - 0.45) / 0.38) ** 2 + ((v - 0.62) / 0.3) ** 2 < 1
        head = ((u - 0.82) / 0.17) ** 2 + ((v - 0.3) / 0.26) ** 2 < 1
        mask = body | head | ((u < 0.12) & (abs(v - 0.45) < 0.06))
    elif name == "horse":  # table-like body on four legs, neck and head
        body = (u > 0.1) & (u < 0.8) & (v > 0.25) & (v < 0.6)
        legs = (v >= 0.6) & ((abs(u - 0.17) < 0.06) | (abs(u - 0.35) < 0.06) | (abs(u - 0.56) < 0.06)
                             | (abs(u - 0.73) < 0.06))
        neck = (u >= 0.7) & (u < 0.95) & (v < 0.35) & (v > 0.02)
        mask = body | legs | neck
    elif name == "zebra":  # hexagon
        mask = (abs(v - 0.5) < 0.5) & (abs(u - 0.5) + 0.5 * abs(v - 0.5) < 0.5)
    else:
        raise InputError(f"no synthetic shape for class {name!r}")
    return mask.astype(np.float32)


def _pattern(name: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Class texture ``float32 [h, w]`` in [0, 1] (the mix between the object's two colours)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * math.pi)
    if name == "airplane":  # horizontal stripes
        return (np.sin(2 * math.pi * y / 9 + phase) > 0).astype(np.float32)
    if name == "bird":  # dots
        return ((np.sin(2 * math.pi * x / 10 + phase) * np.sin(2 * math.pi * y / 10)) > 0.5).astype(np.float32)
    if name == "car":  # checkerboard
        return (((x // 12) + (y // 12)) % 2).astype(np.float32)
    if name == "dog":  # blotches: thresholded smooth noise
        small = Image.fromarray(rng.uniform(0, 255, (5, 6)).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        return (np.asarray(small, np.float32) > 128).astype(np.float32)
    if name == "horse":  # diagonal stripes
        return (np.sin(2 * math.pi * (x + y) / 12 + phase) > 0).astype(np.float32)
    if name == "zebra":  # narrow vertical stripes
        return (np.sin(2 * math.pi * x / 6 + phase) > 0).astype(np.float32)
    raise InputError(f"no synthetic texture for class {name!r}")


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random colours far enough apart for the texture to show."""
    while True:
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if np.abs(a - b).sum() > 180:
            return a.astype(np.float32), b.astype(np.float32)


def _sprite(name: str, rng: np.random.Generator) -> Image.Image:
    """The object's canonical RGBA appearance (height ``_SPRITE`` px)."""
    h, w = _SPRITE, int(round(_SPRITE * _ASPECT[name]))
    mask = _silhouette(name, h, w)
    mix = _pattern(name, h, w, rng)[..., None]
    a, b = _two_colours(rng)
    rgb = a * mix + b * (1 - mix)
    rgba = np.concatenate([rgb, mask[..., None] * 255], axis=2)
    return Image.fromarray(rgba.clip(0, 255).astype(np.uint8), "RGBA")


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Textured background ``float32 [H, W, 3]``: coarse colour field + mid-scale blobs + stripes."""
    def field(cells_y: int, cells_x: int, amplitude: float) -> np.ndarray:
        small = rng.uniform(0, 255, (cells_y, cells_x, 3)).astype(np.uint8)
        return (np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), np.float32) - 128) \
            * amplitude

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, period = rng.uniform(0, math.pi), rng.uniform(5, 14)
    stripes = np.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period)[..., None] * 18
    image = 128 + field(3, 4, 0.9) + field(12, 15, 0.45) + stripes
    return image.clip(0, 255)


# -------------------------------------------------------------------------------------------- objects over time


@dataclass
class _Track:
    """An object's whole life in a video: appearance, per-frame geometry and per-frame degradation."""

    name: str
    sprite: Image.Image
    group: str
    centres: np.ndarray  # float [T, 2] x, y
    sizes: np.ndarray  # float [T] sqrt(w * h)
    velocity: np.ndarray  # float [T, 2] px / frame (direction of the motion blur)
    degradation: list  # [T] name from _DEGRADATIONS or None
    pose: np.ndarray  # float [T, 2]: rotation in degrees, aspect stretch (1 = none)


def _trajectory(rng: np.random.Generator, group: str, frames: int, width: int, height: int, aspect: float):
    """Centres ``[T, 2]``, sizes ``[T]`` and velocities ``[T, 2]`` bouncing inside the image."""
    size0 = rng.uniform(25, 55)
    swing, period, phase = _SCALE_SWING[group], rng.uniform(20, 40), rng.uniform(0, 2 * math.pi)
    sizes = size0 * (1 + swing * np.sin(2 * math.pi * np.arange(frames) / period + phase))
    half_w, half_h = sizes.max() * math.sqrt(aspect) / 2 + 1, sizes.max() / math.sqrt(aspect) / 2 + 1
    if 2 * half_w >= width or 2 * half_h >= height:  # too large for this image: shrink uniformly
        shrink = min((width - 2) / (2 * half_w), (height - 2) / (2 * half_h))
        sizes, half_w, half_h = sizes * shrink, half_w * shrink, half_h * shrink
    speed = rng.uniform(*_SPEED[group]) * size0
    angle = rng.uniform(0, 2 * math.pi)
    v = np.array([math.cos(angle), math.sin(angle)]) * speed
    c = np.array([rng.uniform(half_w, width - half_w), rng.uniform(half_h, height - half_h)])
    low, high = np.array([half_w, half_h]), np.array([width - half_w, height - half_h])
    centres, velocities = np.zeros((frames, 2)), np.zeros((frames, 2))
    for t in range(frames):
        centres[t], velocities[t] = c, v
        if group == "fast" and rng.random() < 0.05:  # fast objects also turn now and then
            turn = rng.uniform(-1.2, 1.2)
            v = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]]) @ v
        c = c + v
        bounce = (c < low) | (c > high)
        v = np.where(bounce, -v, v)
        c = np.clip(c, low, high)
    return centres, sizes, velocities


def _degradation_schedule(rng: np.random.Generator, frames: int) -> list:
    """Runs of 1-4 degraded frames covering ~40 % (30-50 %) of the frames; the rest are clear."""
    schedule: list = [None] * frames
    target = rng.uniform(0.3, 0.5) * frames
    while sum(d is not None for d in schedule) < target:
        start, length = int(rng.integers(frames)), int(rng.integers(1, 5))
        kind = _DEGRADATIONS[rng.choice(len(_DEGRADATIONS), p=_DEGRADATION_WEIGHTS)]
        for t in range(start, min(frames, start + length)):
            schedule[t] = kind
    return schedule


def _make_track(rng: np.random.Generator, group: str, frames: int, width: int, height: int,
                degrade: bool) -> _Track:
    name = SYNTH_CLASSES[int(rng.integers(len(SYNTH_CLASSES)))]
    sprite = _sprite(name, rng)
    centres, sizes, velocities = _trajectory(rng, group, frames, width, height, _ASPECT[name])
    schedule = _degradation_schedule(rng, frames) if degrade else [None] * frames
    pose = np.tile([0.0, 1.0], (frames, 1))
    for t, kind in enumerate(schedule):
        if kind == "rare_pose":
            pose[t] = (rng.uniform(35, 90) * rng.choice([-1, 1]), 1.0) if rng.random() < 0.5 \
                else (0.0, rng.choice([0.55, 1.8]))
    return _Track(name, sprite, group, centres, sizes, velocities, schedule, pose)


# ------------------------------------------------------------------------------------------------------ drawing


def _posed(track: _Track, t: int) -> np.ndarray:
    """The object's RGBA at frame ``t``, resized and posed: ``float32 [h, w, 4]``, alpha in [0, 1]."""
    aspect = _ASPECT[track.name] * track.pose[t, 1]
    w = max(4, int(round(track.sizes[t] * math.sqrt(aspect))))
    h = max(4, int(round(track.sizes[t] / math.sqrt(aspect))))
    image = track.sprite.resize((w, h), Image.BILINEAR)
    if track.pose[t, 0]:
        image = image.rotate(float(track.pose[t, 0]), Image.BILINEAR, expand=True)
    rgba = np.asarray(image, np.float32).copy()
    rgba[..., 3] /= 255.0
    return rgba


def _motion_blur(rgba: np.ndarray, velocity: np.ndarray) -> tuple[np.ndarray, int]:
    """Average of copies shifted along the motion (premultiplied alpha); returns the image and its padding."""
    direction = velocity / (np.linalg.norm(velocity) + 1e-6) if np.linalg.norm(velocity) > 0.05 \
        else np.array([1.0, 0.0])
    length = 13
    pad = length // 2 + 1
    h, w = rgba.shape[:2]
    premultiplied = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], axis=2)
    out = np.zeros((h + 2 * pad, w + 2 * pad, 4), np.float32)
    for step in np.linspace(-length / 2, length / 2, length):
        dx, dy = int(round(step * direction[0])), int(round(step * direction[1]))
        out[pad + dy:pad + dy + h, pad + dx:pad + dx + w] += premultiplied
    out /= length
    out[..., :3] /= np.maximum(out[..., 3:], 1e-6)
    return out, pad


def _defocus(rgba: np.ndarray, radius: float) -> tuple[np.ndarray, int]:
    """Gaussian blur of the premultiplied object; returns the image and its padding."""
    pad = int(math.ceil(2 * radius))
    premultiplied = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:] * 255], axis=2)
    premultiplied = np.pad(premultiplied, ((pad, pad), (pad, pad), (0, 0)))
    blurred = np.stack([np.asarray(Image.fromarray(premultiplied[..., c].clip(0, 255).astype(np.uint8))
                                   .filter(ImageFilter.GaussianBlur(radius)), np.float32)
                        for c in range(4)], axis=2)
    alpha = blurred[..., 3:] / 255.0
    rgb = blurred[..., :3] / np.maximum(alpha, 1e-3)
    return np.concatenate([rgb, alpha], axis=2), pad


def _paste(canvas: np.ndarray, rgba: np.ndarray, x0: int, y0: int) -> None:
    """Alpha-blend ``rgba`` into ``canvas [H, W, 3]`` with its top-left corner at (x0, y0), clipped."""
    H, W = canvas.shape[:2]
    h, w = rgba.shape[:2]
    ax0, ay0, ax1, ay1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if ax1 <= ax0 or ay1 <= ay0:
        return
    patch = rgba[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0]
    alpha = patch[..., 3:]
    region = canvas[ay0:ay1, ax0:ax1]
    canvas[ay0:ay1, ax0:ax1] = region * (1 - alpha) + patch[..., :3] * alpha


def _draw_object(canvas: np.ndarray, background: np.ndarray, track: _Track, t: int,
                 rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Draw ``track`` at frame ``t``; returns its inclusive box (x1, y1, x2, y2) from the undegraded pose."""
    rgba = _posed(track, t)
    H, W = canvas.shape[:2]
    h, w = rgba.shape[:2]
    x0, y0 = int(round(track.centres[t, 0] - w / 2)), int(round(track.centres[t, 1] - h / 2))
    ys, xs = np.nonzero(rgba[..., 3] > 0.5)
    box = (max(0, x0 + int(xs.min())), max(0, y0 + int(ys.min())),
           min(W - 1, x0 + int(xs.max())), min(H - 1, y0 + int(ys.max())))
    kind, pad = track.degradation[t], 0
    if kind == "motion_blur":
        rgba, pad = _motion_blur(rgba, track.velocity[t])
    elif kind == "defocus":
        rgba, pad = _defocus(rgba, rng.uniform(2.5, 4.0))
    elif kind == "low_contrast":
        local = background[max(0, y0):y0 + h, max(0, x0):x0 + w].reshape(-1, 3).mean(axis=0)
        rgba = rgba.copy()
        rgba[..., :3] = 0.85 * local + 0.15 * rgba[..., :3]
    _paste(canvas, rgba, x0 - pad, y0 - pad)
    return box


def _occlude(canvas: np.ndarray, background: np.ndarray, box: tuple, rng: np.random.Generator) -> None:
    """Cover 45-70 % of ``box`` from one side with a patch of background texture taken elsewhere."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1 + 1, y2 - y1 + 1
    fraction = rng.uniform(0.45, 0.7)
    side = int(rng.integers(4))
    if side < 2:  # left / right band
        pw, ph = max(1, int(bw * fraction)), bh + 4
        px, py = (x1 - 2 if side == 0 else x2 + 3 - pw), y1 - 2
    else:  # top / bottom band
        pw, ph = bw + 4, max(1, int(bh * fraction))
        px, py = x1 - 2, (y1 - 2 if side == 2 else y2 + 3 - ph)
    H, W = canvas.shape[:2]
    px0, py0, px1, py1 = max(0, px), max(0, py), min(W, px + pw), min(H, py + ph)
    if px1 <= px0 or py1 <= py0:
        return
    sx, sy = int(rng.integers(0, W - (px1 - px0) + 1)), int(rng.integers(0, H - (py1 - py0) + 1))
    canvas[py0:py1, px0:px1] = background[sy:sy + py1 - py0, sx:sx + px1 - px0]


# ------------------------------------------------------------------------------------------------------ writing


def _xml(folder: str, filename: str, width: int, height: int, objects: list[dict], with_track: bool) -> str:
    """An annotation in the real VID/DET XML layout (bndbox tags in the real order: xmax, xmin, ymax, ymin)."""
    parts = [f"<annotation>\n\t<folder>{folder}</folder>\n\t<filename>{filename}</filename>\n"
             f"\t<source>\n\t\t<database>ILSVRC_2015</database>\n\t</source>\n"
             f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t</size>\n"]
    for obj in objects:
        x1, y1, x2, y2 = obj["box"]
        track = f"\t\t<trackid>{obj['track']}</trackid>\n" if with_track else ""
        flags = (f"\t\t<occluded>{int(obj['occluded'])}</occluded>\n\t\t<generated>0</generated>\n"
                 if with_track else "")
        degraded = "\t\t<degraded>1</degraded>\n" if obj["degraded"] else ""
        parts.append(f"\t<object>\n{track}\t\t<name>{_WNID[obj['name']]}</name>\n"
                     f"\t\t<bndbox>\n\t\t\t<xmax>{x2}</xmax>\n\t\t\t<xmin>{x1}</xmin>\n"
                     f"\t\t\t<ymax>{y2}</ymax>\n\t\t\t<ymin>{y1}</ymin>\n\t\t</bndbox>\n"
                     f"{flags}{degraded}\t</object>\n")
    parts.append("</annotation>\n")
    return "".join(parts)


def _save(image: np.ndarray, path: Path, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=quality)


def _write_video(root: Path, name: str, rng: np.random.Generator, first_group: int, groups: tuple[str, ...],
                 frames: int, width: int, height: int, quality: int) -> None:
    """Render and write one snippet: ``Data/VID/<name>/%06d.JPEG`` and ``Annotations/VID/<name>/%06d.xml``; its
    objects take the motion ``groups`` in turn, from the ``first_group``-th on."""
    background = _background(rng, width, height)
    count = int(rng.integers(1, 4))
    tracks = [_make_track(rng, groups[(first_group + i) % len(groups)], frames, width, height, degrade=True)
              for i in range(count)]
    folder = name.split("/", 1)[1]
    for t in range(frames):
        canvas = background + rng.normal(0, 2.0, background.shape).astype(np.float32)  # sensor noise
        objects = []
        for track_id, track in enumerate(tracks):
            box = _draw_object(canvas, background, track, t, rng)
            objects.append({"box": box, "name": track.name, "track": track_id,
                            "occluded": track.degradation[t] == "occlusion",
                            "degraded": track.degradation[t] is not None})
        for obj in objects:  # occluders go on top of every object
            if obj["occluded"]:
                _occlude(canvas, background, obj["box"], rng)
        _save(canvas, root / "Data" / "VID" / name / f"{t:06d}.JPEG", quality)
        xml = root / "Annotations" / "VID" / name / f"{t:06d}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(_xml(folder, f"{t:06d}", width, height, objects, with_track=True))


def _write_still(root: Path, name: str, rng: np.random.Generator, width: int, height: int,
                 quality: int) -> list[str]:
    """Write one DET image with 1-2 clear objects; returns its class names."""
    background = _background(rng, width, height)
    canvas = background.copy()
    objects = []
    for _ in range(int(rng.integers(1, 3))):
        track = _make_track(rng, "slow", 1, width, height, degrade=False)
        objects.append({"box": _draw_object(canvas, background, track, 0, rng), "name": track.name,
                        "degraded": False})
    _save(canvas, root / "Data" / "DET" / f"{name}.JPEG", quality)
    xml = root / "Annotations" / "DET" / f"{name}.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    xml.write_text(_xml(name.rsplit("/", 1)[0].split("/", 1)[1], name.rsplit("/", 1)[1], width, height,
                        objects, with_track=False))
    return [obj["name"] for obj in objects]


def train_key_frames(num_frames: int, count: int = 15) -> list[int]:
    """``count`` evenly spaced frames (segment centres), as listed in ``VID_train_15frames.txt``."""
    return sorted({int((2 * i + 1) * num_frames / (2 * count)) for i in range(count)})


def _check_frame_size(width: int, height: int) -> None:
    """Refuse frame sizes that are too small to draw on, that JPEG cannot store, or that do not fit in memory."""
    if width < 64 or height < 64:
        raise InputError(f"synthetic frames (--size) must be at least 64x64 px, got {width}x{height}")
    if max(width, height) > _JPEG_MAX_SIDE:
        raise InputError(f"synthetic frames (--size) must be at most {_JPEG_MAX_SIDE} px a side (JPEG), got "
                         f"{width}x{height}")
    need, available = width * height * _BYTES_PER_PIXEL, _available_memory()
    if available is not None and need > available:
        raise InputError(f"synthetic frames (--size) of {width}x{height} px need about {need / 2**30:.1f} GiB of "
                         f"memory to render; {available / 2**30:.1f} GiB is available")


def _available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else physical memory), or ``None``."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def generate_synthetic_vid(out_root: str | os.PathLike, num_videos: int = 40, seed: int = 0, *,
                           num_val_videos: int = 10, num_frames: int = 40, num_det_images: int = 20,
                           size: tuple[int, int] = (160, 128), jpeg_quality: int = 90,
                           motion_groups: Sequence[str] = MOTION_SPEEDS,
                           progress: Optional[Callable[[int, int], None]] = None, overwrite: bool = False) -> Path:
    """Write a synthetic dataset in the ImageNet VID layout under ``out_root`` (see the module docstring).

    The dataset is built in a temporary sibling folder and moved into place when complete: a failure leaves
    ``out_root`` as it was, and an existing non-empty ``out_root`` is refused (``FileExistsError``) unless
    ``overwrite``, which replaces it whole.

    Args:
        num_videos / num_val_videos: snippets of the train / val split.
        num_frames: frames per snippet.
        num_det_images: DET-style still images (train only).
        size: frame (width, height) in pixels.
        motion_groups: the speeds (of :data:`MOTION_SPEEDS`) that the videos' objects take in turn; all three by
            default, a subset for a benchmark without, e.g., fast objects. The default's files do not change.
        progress: optional ``callable(done, total)`` called after each video or image.
    Returns the dataset root.
    """
    width, height = size
    if min(num_videos, num_val_videos, num_det_images) < 0 or num_frames < 1:
        raise InputError("video, image and frame counts must be >= 0 (frames >= 1)")
    _check_frame_size(width, height)
    groups = _checked_groups(motion_groups)
    with replaced_directory(out_root, overwrite) as build:
        _write_dataset(build, num_videos, seed, num_val_videos, num_frames, num_det_images, width, height,
                       jpeg_quality, groups, progress)
    return Path(out_root)


def _checked_groups(motion_groups: Sequence[str]) -> tuple[str, ...]:
    """``motion_groups`` as a tuple, or a one-line error for an empty, repeated or unknown group."""
    groups = tuple(motion_groups)
    unknown = [group for group in groups if group not in MOTION_SPEEDS]
    if not groups or unknown or len(set(groups)) < len(groups):
        raise InputError(f"motion groups must be distinct names among {', '.join(MOTION_SPEEDS)}, got "
                         f"{', '.join(groups) or 'none'}")
    return groups


def _write_dataset(root: Path, num_videos: int, seed: int, num_val_videos: int, num_frames: int,
                   num_det_images: int, width: int, height: int, jpeg_quality: int, groups: tuple[str, ...],
                   progress: Optional[Callable[[int, int], None]]) -> None:
    """The body of :func:`generate_synthetic_vid`, writing into ``root``."""
    total, done = num_videos + num_val_videos + num_det_images, 0
    train_lines, val_lines, frame_lines, det_lines = [], [], [], []
    for part, count in ((0, num_videos), (1, num_val_videos)):
        for index in range(count):
            rng = np.random.default_rng([seed, part, index])
            if part == 0:
                name = f"train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_{index:08d}"
                train_lines += [f"{name} 1 {f} {num_frames}" for f in train_key_frames(num_frames)]
            else:
                name = f"val/ILSVRC2015_val_{index:08d}"
                val_lines.append(f"{name} {len(frame_lines) + 1} 0 {num_frames}")
                frame_lines += [f"{name}/{f:06d} {len(frame_lines) + f + 1}" for f in range(num_frames)]
            _write_video(root, name, rng, index + part, groups, num_frames, width, height, jpeg_quality)
            done += 1
            if progress:
                progress(done, total)
    for index in range(num_det_images):
        name = f"train/ILSVRC2014_train_0000/ILSVRC2014_train_{index:08d}"
        classes = _write_still(root, name, np.random.default_rng([seed, 2, index]), width, height, jpeg_quality)
        det_lines += [f"{name} 1"] * len(set(classes))  # one line per class, as in the real file
        done += 1
        if progress:
            progress(done, total)
    sets = root / "ImageSets"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "VID_train_15frames.txt").write_text("".join(line + "\n" for line in train_lines))
    (sets / "VID_val_videos.txt").write_text("".join(line + "\n" for line in val_lines))
    (sets / "VID_val_frames.txt").write_text("".join(line + "\n" for line in frame_lines))
    (sets / "DET_train_30classes.txt").write_text("\n".join(det_lines))  # no trailing newline, like the real one
