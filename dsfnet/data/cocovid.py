"""mmtracking-style CocoVID JSON: read users' own video datasets, and write any dataset in that format.

Layout (as written by mmtracking's ``imagenet2coco_vid``)::

    {"categories": [{"id": 1, "name": "airplane", "encode_name": "n02691156"}, ...],
     "videos": [{"id": 1, "name": "val/ILSVRC2015_val_00000000"}, ...],
     "images": [{"id": 1, "video_id": 1, "frame_id": 0, "file_name": "...JPEG", "width": W, "height": H,
                 "is_vid_train_frame": false}, ...],
     "annotations": [{"id": 1, "image_id": 1, "video_id": 1, "category_id": 3, "instance_id": 0,
                      "bbox": [x1, y1, x2 - x1, y2 - y1], "area": ..., "iscrowd": false, "occluded": false}]}

Conventions:
- ``bbox`` is ``[x1, y1, x2 - x1, y2 - y1]`` of the inclusive-corner box, as mmtracking converts VID XML, so
  ``x2 = x + w`` on reading. Boxes are clipped to the image like the VID reader does.
- Labels are the categories' positions when sorted by id (label 1 = smallest id); class names are theirs.
- ``instance_id`` is the track id, unique within a video (the writer keeps the original track ids; files whose
  ids are unique over the whole dataset read just as well).
- ``file_name`` is relative to ``image_root``, by default the JSON file's folder.
- Key frames: images with ``is_vid_train_frame: true``; if no image has the field, every frame is one.
- Still images: a video with ``"is_still_image": true`` (written so), or an image whose ``video_id`` is missing
  or -1 (mmtracking's DET images), which becomes a one-frame video named after its file.
- Crowd annotations (``iscrowd: true``) are dropped: the records have no ignore flag.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dsfnet.atomic import atomic_write_bytes
from dsfnet.data.classes import VID_CLASSES
from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord, clip_box
from dsfnet.errors import InputError, InputNotFound

_NAME_TO_WNID = dict(VID_CLASSES)


def _image_root(json_path: Path, image_root: Optional[str | os.PathLike]) -> str:
    return os.path.abspath(image_root if image_root is not None else json_path.parent)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def write_cocovid(dataset: DatasetRecord, json_path: str | os.PathLike,
                  image_root: Optional[str | os.PathLike] = None) -> None:
    """Write ``dataset`` as CocoVID JSON (atomically); ``file_name`` is relative to ``image_root``."""
    json_path = Path(json_path)
    document = cocovid_document(dataset, _image_root(json_path, image_root))
    atomic_write_bytes(json_path, json.dumps(document, separators=(",", ":")).encode())


def cocovid_document(dataset: DatasetRecord, root: str) -> dict:
    """``dataset`` as a CocoVID document (plain JSON types); ``file_name`` is relative to the folder ``root``."""
    keys = set(dataset.training_keys())
    categories = [{"id": label, "name": name, **({"encode_name": _NAME_TO_WNID[name]}
                                                 if name in _NAME_TO_WNID else {})}
                  for label, name in enumerate(dataset.class_names, 1)]
    videos, images, annotations = [], [], []
    for v, video in enumerate(dataset.videos):
        video_id = v + 1
        videos.append({"id": video_id, "name": video.name, **({"is_still_image": True} if video.is_still_image
                                                                else {})})
        for f, frame in enumerate(video.frames):
            image_id = len(images) + 1
            images.append({"id": image_id, "video_id": video_id, "frame_id": int(frame.frame_index),
                           "file_name": os.path.relpath(frame.image_path, root).replace(os.sep, "/"),
                           "width": int(frame.width), "height": int(frame.height),
                           "is_vid_train_frame": (v, f) in keys})
            occluded, degraded = frame.flags("occluded"), frame.flags("degraded")
            for box, label, track, occ, deg in zip(frame.boxes.tolist(), frame.labels.tolist(),
                                                   frame.track_ids.tolist(), occluded.tolist(), degraded.tolist()):
                x1, y1, x2, y2 = box
                annotations.append({"id": len(annotations) + 1, "video_id": video_id, "image_id": image_id,
                                    "category_id": int(label), "instance_id": int(track),
                                    "bbox": [_number(x1), _number(y1), _number(x2 - x1), _number(y2 - y1)],
                                    "area": _number((x2 - x1) * (y2 - y1)), "iscrowd": False,
                                    "occluded": bool(occ), "degraded": bool(deg)})
    return {"categories": categories, "videos": videos, "images": images, "annotations": annotations}


def _field(item: dict, key: str, where: str) -> Any:
    if key not in item:
        raise InputError(f"{where} has no '{key}'")
    return item[key]


def _first_repeat(values) -> Any:
    """The first value that occurs a second time in ``values``, or ``None``."""
    seen = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def check_unique_ids(document: dict, where: str) -> None:
    """Refuse repeated ids (categories, videos, images, annotations), category names and (video_id, frame_id)
    pairs: silently merged, they change the ground truth's counts. ``where`` (the file) heads the message."""
    images = document.get("images", [])
    checks = [
        ("category id", (c.get("id") for c in document.get("categories", []))),
        ("category name", (c.get("name") for c in document.get("categories", []))),
        ("video id", (v.get("id") for v in document.get("videos", []))),
        ("image id", (image.get("id") for image in images)),
        ("annotation id", (a["id"] for a in document.get("annotations", []) if "id" in a)),
        ("(video_id, frame_id)", ((image.get("video_id"), image.get("frame_id")) for image in images
                                  if image.get("video_id", -1) not in (None, -1))),
    ]
    for what, values in checks:
        repeated = _first_repeat(values)
        if repeated is not None:
            raise InputError(f"{where}: ground truth lists {what} {repeated!r} twice")


def read_cocovid(json_path: str | os.PathLike, image_root: Optional[str | os.PathLike] = None) -> DatasetRecord:
    """Read a CocoVID JSON file into records (see the module docstring for the conventions)."""
    json_path = Path(json_path)
    root = _image_root(json_path, image_root)
    try:
        document = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise InputNotFound(f"CocoVID annotation file not found: {json_path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{json_path}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise InputError(f"{json_path}: expected a JSON object with categories / videos / images / annotations")
    check_unique_ids(document, where := str(json_path))
    categories = sorted(_field(document, "categories", where), key=lambda c: _field(c, "id", f"{where}: a category"))
    labels = {c["id"]: position for position, c in enumerate(categories, 1)}
    class_names = tuple(str(_field(c, "name", f"{where}: category {c['id']}")) for c in categories)

    by_image: dict[Any, list[dict]] = defaultdict(list)
    for ann in _field(document, "annotations", where):
        by_image[_field(ann, "image_id", f"{where}: annotation {ann.get('id')}")].append(ann)
    images = _field(document, "images", where)
    image_ids = {_field(image, "id", f"{where}: an image") for image in images}
    for image_id, anns in by_image.items():
        if image_id not in image_ids:
            raise InputError(f"{where}: annotation {anns[0].get('id')} refers to unknown image_id {image_id}")

    videos = {v["id"]: v for v in document.get("videos", [])}
    frames_of: dict[Any, list[dict]] = {video_id: [] for video_id in videos}
    stills = []
    for image in images:
        video_id = image.get("video_id", -1)
        if video_id in (None, -1):
            stills.append(image)
        elif video_id not in frames_of:
            raise InputError(f"{where}: image {image['id']} refers to unknown video_id {video_id}")
        else:
            frames_of[video_id].append(image)

    records, keys, any_key_field = [], [], any("is_vid_train_frame" in image for image in images)
    groups = [(videos[v]["name"], bool(videos[v].get("is_still_image", False)),
               sorted(frames_of[v], key=lambda image: image.get("frame_id", 0))) for v in videos]
    groups += [(os.path.splitext(image["file_name"])[0], True, [image]) for image in stills]
    for name, still, group in groups:
        frames = []
        for position, image in enumerate(group):
            frames.append(_frame(image, by_image.get(image["id"], []), labels, name, still, root, where))
            if image.get("is_vid_train_frame", not any_key_field):
                keys.append((len(records), position))
        records.append(VideoRecord(name=name, frames=frames, is_still_image=still))
    return DatasetRecord(videos=records, class_names=class_names, key_frames=keys)


def _frame(image: dict, anns: list[dict], labels: dict, video: str, still: bool, root: str,
           where: str) -> FrameRecord:
    """One image and its (non-crowd) annotations as a record, boxes clipped to the image."""
    here = f"{where}: image {image['id']}"
    width, height = int(_field(image, "width", here)), int(_field(image, "height", here))
    boxes, label_list, tracks, occluded, degraded = [], [], [], [], []
    for ann in anns:
        if ann.get("iscrowd"):
            continue
        there = f"{where}: annotation {ann.get('id')}"
        category = _field(ann, "category_id", there)
        if category not in labels:
            raise InputError(f"{there} has unknown category_id {category}")
        bbox = _field(ann, "bbox", there)
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
            raise InputError(f"{there}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(value) for value in bbox)
        if w < 0 or h < 0:
            raise InputError(f"{there} has a negative bbox width or height")
        boxes.append(clip_box(x, y, x + w, y + h, width, height))
        label_list.append(labels[category])
        tracks.append(len(tracks) if still and ann.get("instance_id", -1) == -1
                      else int(_field(ann, "instance_id", there)))
        occluded.append(ann.get("occluded") in (True, 1))
        degraded.append(ann.get("degraded") in (True, 1))
    return FrameRecord(
        video=video, frame_index=0 if still else int(_field(image, "frame_id", here)),
        image_path=os.path.normpath(os.path.join(root, _field(image, "file_name", here))), width=width, height=height,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=np.asarray(label_list, np.int64),
        track_ids=np.asarray(tracks, np.int64), occluded=np.asarray(occluded, bool),
        degraded=np.asarray(degraded, bool))
