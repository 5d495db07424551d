"""The splits a config names: ``read_split(data_config, which)`` for training, validation and evaluation.

``data.format`` picks the reader: ``vid`` (an ImageNet VID/DET tree, :mod:`dsfnet.data.vid`) or ``cocovid``
(an mmtracking JSON file, :mod:`dsfnet.data.cocovid`). Missing paths raise one-line errors naming the config key.
A CocoVID split's categories are matched to ``data.class_names`` by name and its frame files checked to exist
(:mod:`dsfnet.data.class_match`), so a wrong path or class list fails before a model is built.
"""

from __future__ import annotations

from pathlib import Path

from dsfnet.config import DataConfig
from dsfnet.data.class_match import check_frame_files, match_classes
from dsfnet.data.cocovid import read_cocovid
from dsfnet.data.records import DatasetRecord
from dsfnet.data.vid import read_vid_split

#: data.root of the vid format when the config leaves it out
DEFAULT_VID_ROOT = "data/ILSVRC2015"


def read_split(data: DataConfig, which: str) -> DatasetRecord:
    """One split of the dataset that ``data`` describes.

    Args:
        which: ``"val"`` (``data.val_split`` / ``data.val_json``), ``"train"`` (the first of
            ``data.train_splits`` / ``data.train_json``) or, for ``vid``, any ``ImageSets`` file name.
    """
    if data.format == "cocovid":
        if which not in ("val", "train"):
            raise ValueError(f"split {which!r}: with data.format cocovid the split is 'val' (data.val_json) or "
                             "'train' (data.train_json)")
        key = f"data.{which}_json"
        json_path = data.val_json if which == "val" else data.train_json
        if json_path is None:
            raise ValueError(f"{key} must name a CocoVID annotation file to read split {which!r}")
        if not Path(json_path).is_file():
            raise FileNotFoundError(f"annotation file not found: {json_path} ({key})")
        dataset = read_cocovid(json_path, image_root=data.root)
        if data.class_names is not None:
            dataset = match_classes(dataset, data.class_names, source=f"{json_path} ({key})",
                                    training=which == "train")
        check_frame_files(dataset, f"{json_path} ({key})")
        return dataset
    name = {"val": data.val_split, "train": data.train_splits[0] if data.train_splits else "train"}.get(which, which)
    return _read_vid(data, name)


def training_splits(data: DataConfig) -> list[DatasetRecord]:
    """Every training split: each of ``data.train_splits`` (``vid``), or ``data.train_json`` (``cocovid``)."""
    if data.format == "cocovid":
        return [read_split(data, "train")]
    return [_read_vid(data, name) for name in data.train_splits]


def _read_vid(data: DataConfig, name: str) -> DatasetRecord:
    root = data.root if data.root is not None else DEFAULT_VID_ROOT
    if not Path(root).is_dir():
        raise FileNotFoundError(f"dataset root not found: {root} (data.root)")
    return read_vid_split(root, name, skip_bad=data.skip_bad_samples)
