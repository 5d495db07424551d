"""Recipe 2 (docs/EXTENDING.md): a dataset format, one CSV file per split below ``data.root``:
``video,frame_index,image,width,height,x1,y1,x2,y2,label`` (a row without a box has empty box fields)."""

import csv
from pathlib import Path

import numpy as np

from dsfnet.config import DataConfig
from dsfnet.data.readers import DatasetReader
from dsfnet.data.records import DatasetRecord, FrameRecord, VideoRecord
from dsfnet.errors import InputNotFound
from dsfnet.registry import DATASET_READERS


@DATASET_READERS.register("toy_csv")
class ToyCsvReader(DatasetReader):
    def read_split(self, data: DataConfig, which: str) -> DatasetRecord:
        path = Path(data.root) / f"{which}.csv"
        if not path.is_file():
            raise InputNotFound(f"split file not found: {path} (data.root)")
        frames: dict[tuple[str, int], FrameRecord] = {}
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                key = (row["video"], int(row["frame_index"]))
                frame = frames.setdefault(key, FrameRecord(row["video"], key[1], str(path.parent / row["image"]),
                                                           int(row["width"]), int(row["height"])))
                if row["x1"]:
                    box = [[float(row[k]) for k in ("x1", "y1", "x2", "y2")]]
                    frame.boxes = np.concatenate([frame.boxes, np.asarray(box, np.float32)])
                    frame.labels = np.append(frame.labels, int(row["label"]))
                    frame.track_ids = np.arange(len(frame.labels))
        videos: dict[str, list[FrameRecord]] = {}
        for (video, _), frame in sorted(frames.items()):
            videos.setdefault(video, []).append(frame)
        return DatasetRecord([VideoRecord(name, frames) for name, frames in videos.items()],
                             tuple(data.class_names or ()))
