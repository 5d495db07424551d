"""COCO per-image JSON (``instances.json`` of CVAT, Label Studio, Roboflow, ... exports), read with ``json``.

Images become frames of videos: those with a ``video_id`` (CocoVID, TAO) by their video, the others by their
folder in ``file_name`` (a file without a folder: one video named after the JSON file), in ``frame_id`` order or
else natural file-name order. ``bbox`` is ``[x, y, w, h]`` (so ``x2 = x + w``); the track id is the
annotation's ``track_id``, ``instance_id`` or ``attributes.track_id`` (CVAT's COCO export), else the annotation
id (every box its own track). Crowd annotations (``iscrowd``) are left out. ``file_name`` is relative to the
JSON file's folder, or to ``--media`` when given.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Optional

from dsfnet.data.importers.annotations import ImportedBox, ImportedVideo, checked_box, number
from dsfnet.errors import InputError
from dsfnet.inference.video_io import natural_key


def read_coco(path: Path, media: Optional[Path] = None) -> list[ImportedVideo]:
    """One video per image group (see the module docstring); image files relative to ``media`` or the JSON."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        line = getattr(error, "lineno", None)
        raise InputError(f"{path}{f':{line}' if line else ''}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise InputError(f"{path}: expected a COCO JSON object with 'images', 'annotations' and 'categories'")
    categories = {c.get("id"): str(c.get("name")) for c in document.get("categories", [])}
    root = media if media is not None else path.parent
    groups = _groups(document, path)
    by_image = defaultdict(list)
    for position, ann in enumerate(document.get("annotations", [])):
        by_image[ann.get("image_id")].append((position, ann))
    videos = []
    for name, images in groups.items():
        boxes = [box for frame, image in enumerate(images)
                 for position, ann in by_image.pop(image.get("id"), [])
                 if (box := _box(ann, frame, categories, f"{path}: annotation {ann.get('id', position)}"))]
        first = images[0]
        videos.append(ImportedVideo(
            name=name, source=path, media=None, frame_files=[root / str(image["file_name"]) for image in images],
            frames=list(range(len(images))), labels=list(categories.values()), boxes=boxes,
            size=(number(first.get("width"), f"{path}: image {first.get('id')}", "width", int),
                  number(first.get("height"), f"{path}: image {first.get('id')}", "height", int))))
    if by_image:
        image_id = next(iter(by_image))
        raise InputError(f"{path}: annotation {by_image[image_id][0][1].get('id')} refers to unknown image_id "
                         f"{image_id}")
    return videos


def _groups(document: dict, path: Path) -> dict[str, list[dict]]:
    """Images by video name, each group in frame order."""
    video_names = {v.get("id"): str(v.get("name")) for v in document.get("videos", [])}
    groups: dict[str, list[dict]] = defaultdict(list)
    for image in document["images"]:
        if not isinstance(image, dict) or "file_name" not in image or "id" not in image:
            raise InputError(f"{path}: image {image.get('id') if isinstance(image, dict) else image!r} needs "
                             "'id' and 'file_name'")
        folder = Path(str(image["file_name"])).parent
        name = video_names.get(image.get("video_id")) or (folder.name if folder.name else path.stem)
        groups[name].append(image)
    return {name: sorted(images, key=lambda image: (image.get("frame_id", 0), natural_key(str(image["file_name"]))))
            for name, images in groups.items()}


def _box(ann: dict, frame: int, categories: dict, where: str) -> Optional[ImportedBox]:
    if ann.get("iscrowd"):
        return None
    if ann.get("category_id") not in categories:
        raise InputError(f"{where}: unknown category_id {ann.get('category_id')!r}")
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise InputError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
    x, y, w, h = (number(value, where, "a bbox value") for value in bbox)
    track = ann.get("track_id", ann.get("instance_id", (ann.get("attributes") or {}).get("track_id", ann.get("id"))))
    return ImportedBox(frame, number(track, where, "the track id", int), categories[ann["category_id"]],
                       checked_box((x, y, x + w, y + h), where), bool(ann.get("occluded")
                                                                     or (ann.get("attributes") or {}).get("occluded")),
                       where)
