"""The splits a config names: ``read_split(data_config, which)`` for training, validation and evaluation.

``data.format`` picks the reader registered under that name in :data:`dsfnet.registry.DATASET_READERS` (the
built-in ones are in :mod:`dsfnet.data.readers`). A CocoVID split's categories are matched to
``data.class_names`` by name and its frame files checked to exist (:mod:`dsfnet.data.class_match`), so a wrong path
or class list fails before a model is built.
"""

from __future__ import annotations

from dsfnet.config import DataConfig
from dsfnet.data.records import DatasetRecord
from dsfnet.registry import DATASET_READERS


def read_split(data: DataConfig, which: str) -> DatasetRecord:
    """One split of the dataset that ``data`` describes.

    Args:
        which: ``"val"`` (``data.val_split`` / ``data.val_json``), ``"train"`` (the first of
            ``data.train_splits`` / ``data.train_json``) or, for ``vid``, any ``ImageSets`` file name.
    """
    return DATASET_READERS.get(data.format, key="data.format")().read_split(data, which)


def training_splits(data: DataConfig) -> list[DatasetRecord]:
    """Every training split: each of ``data.train_splits`` (``vid``), or ``data.train_json`` (``cocovid``)."""
    return DATASET_READERS.get(data.format, key="data.format")().training_splits(data)
