"""Fuzzing the ImageNet VID / DET reader: split files (all four kinds) and the XML annotations they name."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsfnet.data.vid import read_vid_split
from dsfnet.errors import InputError

from tests.fuzz.fuzzhelpers import FUZZ, any_input, check_dataset, mutated_xml, read_or_input_error

SNIPPET = "val/ILSVRC2015_val_00000000"
DET = "train/ILSVRC2014_train_0000/ILSVRC2014_train_00000001"
#: split stem -> a valid split file naming SNIPPET's two frames (or the DET image)
SPLITS = {
    "VID_val_videos": f"{SNIPPET} 1 0 2\n",
    "VID_val_frames": f"{SNIPPET}/000000 1\n{SNIPPET}/000001 2\n",
    "VID_train_15frames": f"{SNIPPET} 1 0 2\n{SNIPPET} 1 1 2\n",
    "DET_train_30classes": f"{DET} 1\n{DET} 1",
}
OBJECT = ("<object><trackid>{track}</trackid><name>{wnid}</name><bndbox><xmax>{x2}</xmax><xmin>{x1}</xmin>"
          "<ymax>{y2}</ymax><ymin>{y1}</ymin></bndbox><occluded>{occluded}</occluded><generated>0</generated>"
          "</object>")
XML = ("<annotation><folder>x</folder><filename>x</filename><size><width>64</width><height>48</height></size>"
       + OBJECT.format(track=0, wnid="n02691156", x1=1, y1=2, x2=30, y2=47, occluded=1)
       + OBJECT.format(track=3, wnid="n02084071", x1=10, y1=10, x2=64, y2=20, occluded=0) + "</annotation>")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ILSVRC2015")
    (root / "ImageSets").mkdir()
    for path in (root / "Annotations" / "VID" / SNIPPET / "000000.xml",
                 root / "Annotations" / "VID" / SNIPPET / "000001.xml", root / "Annotations" / "DET" / f"{DET}.xml"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(XML)
    return root


def read_split(root: Path, stem: str, split: bytes, xml: bytes, skip_bad: bool) -> None:
    """Write the split file ``stem`` and the first XML it names, and read the split with an empty index cache."""
    split_path = root / "ImageSets" / f"{stem}.txt"
    split_path.write_bytes(split)
    xml_path = root / "Annotations" / ("DET" if stem.startswith("DET") else "VID") / (
        f"{DET}.xml" if stem.startswith("DET") else f"{SNIPPET}/000000.xml")
    xml_path.write_bytes(xml)
    cache = tempfile.mkdtemp(dir=root)  # a cache keyed by folder times could hold the previous example's index
    try:
        dataset = read_or_input_error(lambda: read_vid_split(root, stem, cache_dir=cache, skip_bad=skip_bad),
                                      split_path, xml_path)
    finally:
        shutil.rmtree(cache)
    if dataset is not None:
        check_dataset(dataset)


def test_valid_tree_reads(root):
    for stem, split in SPLITS.items():
        read_split(root, stem, split.encode(), XML.encode(), False)
        dataset = read_vid_split(root, stem, cache_dir=root / "cache")
        assert sum(len(frame.boxes) for frame in dataset.frames()) == 2 * len(dataset.frames()), stem


@FUZZ
@given(stem=st.sampled_from(sorted(SPLITS)), data=st.data(), skip_bad=st.booleans())
def test_mutated_split_files(root, stem, data, skip_bad):
    read_split(root, stem, data.draw(any_input(SPLITS[stem].encode())), XML.encode(), skip_bad)


@FUZZ
@given(stem=st.sampled_from(sorted(SPLITS)), xml=st.one_of(mutated_xml(XML), any_input(XML.encode())),
       skip_bad=st.booleans())
def test_mutated_annotations(root, stem, xml, skip_bad):
    read_split(root, stem, SPLITS[stem].encode(), xml, skip_bad)


#: inputs the fuzzing found: split-file line errors were plain ValueErrors (shown as bugs by the command line, also
#: in `dsfnet convert --split`), a NUL byte reached os.stat, and XML numbers inf / nan gave OverflowError,
#: ValueError or NaN boxes
FOUND = {
    "bad split line": ("VID_val_videos", f"{SNIPPET} 1 0 x\n", XML, "VID_val_videos.txt line 1: expected integer"),
    "NUL byte": ("DET_train_30classes", f"{DET}\x00 1\n", XML, "DET_train_30classes.txt line 1: a NUL byte"),
    "width inf": ("VID_val_videos", SPLITS["VID_val_videos"], XML.replace("<width>64", "<width>inf"),
                  "000000.xml: <width> is not a finite number"),
    "xmin nan": ("VID_val_videos", SPLITS["VID_val_videos"], XML.replace("<xmin>1<", "<xmin>nan<"),
                 "000000.xml: <xmin> is not a finite number"),
    "trackid 1.5": ("VID_val_videos", SPLITS["VID_val_videos"], XML.replace("<trackid>3<", "<trackid>1.5<"),
                    "000000.xml: <trackid> is not a 64-bit integer"),
}


@pytest.mark.parametrize("stem, split, xml, message", FOUND.values(), ids=FOUND.keys())
def test_found_inputs_are_one_line_errors(root, stem, split, xml, message):
    (root / "ImageSets" / f"{stem}.txt").write_text(split)
    (root / "Annotations" / "VID" / SNIPPET / "000000.xml").write_text(xml)
    with pytest.raises(InputError, match=re.escape(message)):
        read_vid_split(root, stem, cache_dir=tempfile.mkdtemp(dir=root))
