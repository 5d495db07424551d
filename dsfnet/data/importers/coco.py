"""COCO per-image JSON (``instances.json`` of CVAT, Label Studio, Roboflow, ... exports), read with ``json``.

Images become frames of videos: those with a ``video_id`` (CocoVID, TAO) by their video, the others by their
folder in ``file_name`` (a file without a folder: one video named after the JSON file), in ``frame_id`` order or
else natural file-name order. ``bbox`` is ``[x, y, w, h]`` (so ``x2 = x + w``); the track id is the
annotation's ``track_id``, ``instance_id`` or ``attributes.track_id`` (CVAT's COCO export), else the annotation
id (every box its own track). Crowd annotations (``iscrowd``) are left out. ``file_name`` is relative to the
JSON file's folder, or to ``--media`` when given.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Optional

from dsfnet.data.importers.annotations import ImportedBox, ImportedVideo, checked_box
from dsfnet.data.json_fields import field, integer, load_json, numbers, objects, text, unique
from dsfnet.errors import InputError
from dsfnet.inference.video_io import natural_key


def read_coco(path: Path, media: Optional[Path] = None) -> list[ImportedVideo]:
    """One video per image group (see the module docstring); image files relative to ``media`` or the JSON."""
    document = load_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise InputError(f"{path}: expected a COCO JSON object with 'images', 'annotations' and 'categories'")
    where = str(path)
    categories = objects(document, "categories", where, default=[])
    ids = unique([integer(c, "id", f"{where}: categories[{k}]") for k, c in enumerate(categories)], "category id",
                 where)
    names = {i: text(c, "name", f"{where}: category {i}") for i, c in zip(ids, categories)}
    root = media if media is not None else path.parent
    groups = _groups(document, path)
    by_image = defaultdict(list)
    for position, ann in enumerate(objects(document, "annotations", where, default=[])):
        by_image[integer(ann, "image_id", f"{where}: annotation {ann.get('id', f'[{position}]')}")].append(
            (position, ann))
    videos = []
    for name, images in groups.items():
        boxes = [box for frame, image in enumerate(images)
                 for position, ann in by_image.pop(image["id"], [])
                 if (box := _box(ann, frame, names, f"{where}: annotation {ann.get('id', f'[{position}]')}"))]
        here = f"{where}: image {images[0]['id']}"
        videos.append(ImportedVideo(
            name=name, source=path, media=None, frame_files=[root / image["file_name"] for image in images],
            frames=list(range(len(images))), labels=list(names.values()), boxes=boxes,
            size=(integer(images[0], "width", here, minimum=1), integer(images[0], "height", here, minimum=1))))
    if by_image:
        image_id = next(iter(by_image))
        raise InputError(f"{path}: annotation {by_image[image_id][0][1].get('id')} refers to unknown image_id "
                         f"{image_id}")
    return videos


def _groups(document: dict, path: Path) -> dict[str, list[dict]]:
    """Images by video name, each group in frame order (ids and file names checked)."""
    where = str(path)
    videos = objects(document, "videos", where, default=[])
    video_names = {integer(v, "id", f"{where}: videos[{k}]"): text(v, "name", f"{where}: videos[{k}]")
                   for k, v in enumerate(videos)}
    images = objects(document, "images", where)
    unique([integer(image, "id", f"{where}: images[{k}]") for k, image in enumerate(images)], "image id", where)
    groups: dict[str, list[dict]] = defaultdict(list)
    order = {}
    for image in images:
        here = f"{where}: image {image['id']}"
        folder = Path(text(image, "file_name", here)).parent
        video_id = None if image.get("video_id") is None else integer(image, "video_id", here)
        name = video_names.get(video_id) or (folder.name if folder.name else path.stem)
        groups[name].append(image)
        order[image["id"]] = (integer(image, "frame_id", here, default=0), natural_key(image["file_name"]))
    return {name: sorted(images, key=lambda image: order[image["id"]]) for name, images in groups.items()}


def _box(ann: dict, frame: int, categories: dict, where: str) -> Optional[ImportedBox]:
    if ann.get("iscrowd"):
        return None
    category = integer(ann, "category_id", where)
    if category not in categories:
        raise InputError(f"{where}: unknown category_id {category}")
    x, y, w, h = numbers(field(ann, "bbox", where), 4, where, "bbox", "[x, y, w, h]")
    attributes = ann.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InputError(f"{where}: 'attributes' must be an object")
    track_key = next((key for key in ("track_id", "instance_id") if key in ann), None)
    track = (integer(ann, track_key, where) if track_key else integer(attributes, "track_id", where)
             if "track_id" in attributes else integer(ann, "id", where))
    return ImportedBox(frame, track, categories[category], checked_box((x, y, x + w, y + h), where),
                       bool(ann.get("occluded") or attributes.get("occluded")), where)
