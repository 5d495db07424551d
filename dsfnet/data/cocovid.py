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
import os
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from dsfnet.atomic import atomic_write_bytes
from dsfnet.data.classes import VID_CLASSES
from dsfnet.data.json_fields import field, integer, load_json, numbers, objects, text, unique
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


def read_cocovid(json_path: str | os.PathLike, image_root: Optional[str | os.PathLike] = None) -> DatasetRecord:
    """Read a CocoVID JSON file into records (see the module docstring for the conventions).

    Raises:
        InputNotFound: ``json_path`` does not exist.
        InputError: not JSON, a field missing or of the wrong type, a repeated id, an id that refers to nothing
            (the message names the file and the entry).
    """
    json_path = Path(json_path)
    where = str(json_path)
    if not json_path.is_file():
        raise InputNotFound(f"CocoVID annotation file not found: {json_path}")
    document = load_json(json_path)
    if not isinstance(document, dict):
        raise InputError(f"{where}: expected a JSON object with categories / videos / images / annotations")
    labels, class_names = _categories(objects(document, "categories", where), where)
    images = objects(document, "images", where)
    by_image = _annotations_by_image(objects(document, "annotations", where), images, where)
    root = _image_root(json_path, image_root)
    records, keys, any_key_field = [], [], any("is_vid_train_frame" in image for image in images)
    for name, still, group in _videos(objects(document, "videos", where, default=[]), images, where):
        frames = []
        for position, image in enumerate(group):
            frames.append(_frame(image, by_image.get(image["id"], []), labels, name, still, root, where))
            if image.get("is_vid_train_frame", not any_key_field):
                keys.append((len(records), position))
        records.append(VideoRecord(name=name, frames=frames, is_still_image=still))
    return DatasetRecord(videos=records, class_names=class_names, key_frames=keys)


def _categories(categories: list[dict], where: str) -> tuple[dict[int, int], tuple[str, ...]]:
    """``(category id -> label, class names)``: labels are the positions of the categories sorted by id."""
    ids = unique([integer(c, "id", f"{where}: categories[{k}]") for k, c in enumerate(categories)], "category id",
                  where)
    names = unique([text(c, "name", f"{where}: category {i}") for i, c in zip(ids, categories)], "category name",
                    where)
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return {ids[k]: label for label, k in enumerate(order, 1)}, tuple(names[k] for k in order)


def _annotations_by_image(annotations: list[dict], images: list[dict], where: str) -> dict[int, list[dict]]:
    """The annotations of each image id (every image id checked: an integer, listed once)."""
    image_ids = unique([integer(image, "id", f"{where}: images[{k}]") for k, image in enumerate(images)],
                        "image id", where)
    unique([integer(a, "id", f"{where}: annotations[{k}]") for k, a in enumerate(annotations) if "id" in a],
            "annotation id", where)
    known, by_image = set(image_ids), defaultdict(list)
    for k, ann in enumerate(annotations):
        image_id = integer(ann, "image_id", f"{where}: annotation {ann.get('id', f'[{k}]')}")
        if image_id not in known:
            raise InputError(f"{where}: annotation {ann.get('id', f'[{k}]')} refers to unknown image_id {image_id}")
        by_image[image_id].append(ann)
    return by_image


def _videos(videos: list[dict], images: list[dict], where: str) -> list[tuple[str, bool, list[dict]]]:
    """``(name, still, images in frame order)`` of each video, then of each still image (no ``video_id``, or
    -1: a one-frame video named after its file)."""
    ids = unique([integer(v, "id", f"{where}: videos[{k}]") for k, v in enumerate(videos)], "video id", where)
    frames_of: dict[int, list[dict]] = {video_id: [] for video_id in ids}
    stills = []
    for image in images:
        here = f"{where}: image {image['id']}"
        if image.get("video_id", -1) in (None, -1):
            stills.append(image)
            continue
        video_id = integer(image, "video_id", here)
        if video_id not in frames_of:
            raise InputError(f"{here} refers to unknown video_id {video_id}")
        frames_of[video_id].append(image)
    groups = []
    for video_id, video in zip(ids, videos):
        frame_ids = [integer(image, "frame_id", f"{where}: image {image['id']}", minimum=0)
                     for image in frames_of[video_id]]
        unique([(video_id, frame_id) for frame_id in frame_ids], "(video_id, frame_id)", where)
        order = sorted(range(len(frame_ids)), key=frame_ids.__getitem__)
        still = bool(video.get("is_still_image", False))
        if still and len(order) > 1:  # each would be frame 0 of the video
            raise InputError(f"{where}: video {video_id} is a still image (is_still_image) but has {len(order)} "
                             "images")
        groups.append((text(video, "name", f"{where}: video {video_id}"), still,
                       [frames_of[video_id][k] for k in order]))
    return groups + [(os.path.splitext(text(image, "file_name", f"{where}: image {image['id']}"))[0], True, [image])
                     for image in stills]


def _frame(image: dict, anns: list[dict], labels: dict, video: str, still: bool, root: str,
           where: str) -> FrameRecord:
    """One image and its (non-crowd) annotations as a record, boxes clipped to the image."""
    here = f"{where}: image {image['id']}"
    width, height = integer(image, "width", here, minimum=1), integer(image, "height", here, minimum=1)
    boxes, label_list, tracks, occluded, degraded = [], [], [], [], []
    for ann in anns:
        if ann.get("iscrowd"):
            continue
        there = f"{where}: annotation {ann.get('id')}"
        category = integer(ann, "category_id", there)
        if category not in labels:
            raise InputError(f"{there} has unknown category_id {category}")
        x, y, w, h = numbers(field(ann, "bbox", there), 4, there, "bbox", "[x, y, w, h]")
        if w < 0 or h < 0:
            raise InputError(f"{there} has a negative bbox width or height")
        boxes.append(clip_box(x, y, x + w, y + h, width, height))
        label_list.append(labels[category])
        tracks.append(len(tracks) if still and ann.get("instance_id", -1) == -1
                      else integer(ann, "instance_id", there))
        occluded.append(ann.get("occluded") in (True, 1))
        degraded.append(ann.get("degraded") in (True, 1))
    return FrameRecord(
        video=video, frame_index=0 if still else integer(image, "frame_id", here, minimum=0),
        image_path=os.path.normpath(os.path.join(root, text(image, "file_name", here))), width=width, height=height,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=np.asarray(label_list, np.int64),
        track_ids=np.asarray(tracks, np.int64), occluded=np.asarray(occluded, bool),
        degraded=np.asarray(degraded, bool))
