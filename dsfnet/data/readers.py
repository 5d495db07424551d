"""Dataset readers, chosen by ``data.format``: the built-in ``vid`` (an ImageNet VID/DET tree,
:mod:`dsfnet.data.vid`) and ``cocovid`` (an mmtracking JSON file, :mod:`dsfnet.data.cocovid`).

A reader is a :class:`DatasetReader` registered in :data:`dsfnet.registry.DATASET_READERS`; it turns the
``data`` section of a config into :class:`dsfnet.data.records.DatasetRecord` splits. Missing paths raise
one-line errors naming the config key. ``docs/EXTENDING.md`` shows how to add one.
"""

from __future__ import annotations

from pathlib import Path

from dsfnet.config import DataConfig
from dsfnet.data.class_match import check_frame_files, match_classes
from dsfnet.data.classes import VID_CLASS_NAMES
from dsfnet.data.cocovid import read_cocovid
from dsfnet.data.records import DatasetRecord
from dsfnet.data.vid import read_vid_split
from dsfnet.errors import ConfigError, InputNotFound
from dsfnet.registry import DATASET_READERS

#: data.root of the vid format when the config leaves it out
DEFAULT_VID_ROOT = "data/ILSVRC2015"


class DatasetReader:
    """The interface of a dataset format: override :meth:`read_split` (and :meth:`training_splits` for a format
    whose training set is several splits)."""

    def read_split(self, data: DataConfig, which: str) -> DatasetRecord:
        """One split: ``which`` is ``"val"``, ``"train"`` or a format-specific split name.

        Raises:
            ConfigError: the split is not one the format has, or a config key it needs is empty.
            InputNotFound / InputError: a file is missing or malformed (the message names it).
        """
        raise NotImplementedError

    def training_splits(self, data: DataConfig) -> list[DatasetRecord]:
        """Every split to train on (default: the ``"train"`` split)."""
        return [self.read_split(data, "train")]


@DATASET_READERS.register("vid")
class VidReader(DatasetReader):
    """An ImageNet VID/DET tree below ``data.root``: ``"val"`` is ``data.val_split``, ``"train"`` the first of
    ``data.train_splits``, and any other name an ``ImageSets`` file."""

    def read_split(self, data: DataConfig, which: str) -> DatasetRecord:
        name = {"val": data.val_split, "train": data.train_splits[0] if data.train_splits else "train"}.get(which,
                                                                                                            which)
        return self._read(data, name)

    def training_splits(self, data: DataConfig) -> list[DatasetRecord]:
        return [self._read(data, name) for name in data.train_splits]

    @staticmethod
    def _read(data: DataConfig, name: str) -> DatasetRecord:
        root = data.root if data.root is not None else DEFAULT_VID_ROOT
        if not Path(root).is_dir():
            raise InputNotFound(f"dataset root not found: {root} (data.root)")
        return read_vid_split(root, name, skip_bad=data.skip_bad_samples)


@DATASET_READERS.register("cocovid")
class CocoVidReader(DatasetReader):
    """An mmtracking CocoVID JSON file: ``"val"`` is ``data.val_json``, ``"train"`` ``data.train_json`` (images
    below ``data.root``, or the JSON's own folder when it is None); categories matched to ``data.class_names`` by
    name, and every frame file checked to exist, so that a wrong path fails before a model is built."""

    def read_split(self, data: DataConfig, which: str) -> DatasetRecord:
        if which not in ("val", "train"):
            raise ConfigError(f"split {which!r}: with data.format cocovid the split is 'val' (data.val_json) or "
                              "'train' (data.train_json)")
        key = f"data.{which}_json"
        json_path = data.val_json if which == "val" else data.train_json
        if json_path is None:
            raise ConfigError(f"{key} must name a CocoVID annotation file to read split {which!r}")
        if not Path(json_path).is_file():
            raise InputNotFound(f"annotation file not found: {json_path} ({key})")
        # Without data.class_names the model's classes are the VID ones (config.class_names): the file's
        # categories are matched to those by name, never taken by position.
        listed = data.class_names if data.class_names is not None else VID_CLASS_NAMES
        source = f"{json_path} ({key})"
        dataset = match_classes(read_cocovid(json_path, image_root=data.root), listed, source=source,
                                training=which == "train", default_list=data.class_names is None)
        check_frame_files(dataset, source)
        return dataset
