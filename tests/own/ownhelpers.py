"""Helpers of the own-data tests: a CVAT for video 1.1 file written from Python, a small video of two moving
squares whose boxes are known."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT = 96, 64


def square_box(track: int, frame: int) -> tuple[float, float, float, float]:
    """The box of square ``track`` (0: red, moving right; 1: green, moving down) in ``frame``."""
    if track == 0:
        x, y, side = 4 + 2 * frame, 8, 20
    else:
        x, y, side = 60, 2 + frame, 18
    return float(x), float(y), float(x + side), float(y + side)


def write_squares_video(path: Path, frames: int) -> Path:
    """``frames`` frames of ``WIDTH`` x ``HEIGHT``: a red square (track 0) and a green one (track 1) moving."""
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.options = {"qscale": "2"}
    for index in range(frames):
        image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        for track, colour in ((0, (230, 30, 30)), (1, (30, 220, 40))):
            x1, y1, x2, y2 = (int(v) for v in square_box(track, index))
            image[y1:y2, x1:x2] = colour
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def box_element(frame: int, box, outside: int = 0, occluded: int = 0, keyframe: int = 1) -> str:
    x1, y1, x2, y2 = box
    return (f'<box frame="{frame}" outside="{outside}" occluded="{occluded}" keyframe="{keyframe}" '
            f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0"></box>')


def cvat_xml(tracks: list[tuple[int, str, list[str]]], *, size: int, source: str, labels=("person", "car"),
             width: int = WIDTH, height: int = HEIGHT) -> str:
    """A CVAT for video 1.1 document: ``tracks`` are ``(id, label, [box elements])``."""
    label_xml = "".join(f"<label><name>{name}</name><color>#ff0000</color><attributes></attributes></label>"
                        for name in labels)
    track_xml = "".join(f'<track id="{track}" label="{label}" source="manual">{"".join(boxes)}</track>'
                        for track, label, boxes in tracks)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta><task>'
            f"<id>1</id><name>own</name><size>{size}</size><mode>interpolation</mode><overlap>5</overlap>"
            f"<start_frame>0</start_frame><stop_frame>{size - 1}</stop_frame><frame_filter></frame_filter>"
            f"<labels>{label_xml}</labels><original_size><width>{width}</width><height>{height}</height>"
            f"</original_size><source>{source}</source></task><dumped>2026-12-05</dumped></meta>"
            f"{track_xml}</annotations>\n")


def squares_cvat(path: Path, video: str, frames: int, *, labels=("person", "car")) -> Path:
    """A CVAT file of the squares video: key frames every 5 frames (CVAT interpolates between them), track 0
    labelled ``labels[0]``, track 1 ``labels[1]``."""
    tracks = []
    for track, label in enumerate(labels[:2]):
        keys = sorted(set(range(0, frames, 5)) | {frames - 1})
        tracks.append((track, label, [box_element(f, square_box(track, f)) for f in keys]))
    path.write_text(cvat_xml(tracks, size=frames, source=video, labels=labels))
    return path
