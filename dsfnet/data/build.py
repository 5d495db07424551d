"""The datasets a config names: its training splits and its validation split, in either format."""

from __future__ import annotations

from dsfnet.config import DataConfig
from dsfnet.data.cocovid import read_cocovid
from dsfnet.data.records import DatasetRecord
from dsfnet.data.vid import read_vid_split


def train_datasets(config: DataConfig) -> list[DatasetRecord]:
    """``data.train_splits`` of ``data.root`` (format ``vid``) or ``data.train_json`` (format ``cocovid``)."""
    if config.format == "cocovid":
        if not config.train_json:
            raise ValueError("data.format is cocovid but data.train_json is not set")
        return [read_cocovid(config.train_json)]
    return [read_vid_split(config.root, split, skip_bad=config.skip_bad_samples) for split in config.train_splits]


def val_dataset(config: DataConfig) -> DatasetRecord:
    """``data.val_split`` of ``data.root`` (format ``vid``) or ``data.val_json`` (format ``cocovid``)."""
    if config.format == "cocovid":
        if not config.val_json:
            raise ValueError("data.format is cocovid but data.val_json is not set")
        return read_cocovid(config.val_json)
    return read_vid_split(config.root, config.val_split, skip_bad=config.skip_bad_samples)
