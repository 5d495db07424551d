"""Shared fixtures: a hand-written VID/DET tree and a small synthetic dataset (generated once per session)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from PIL import Image

SNIPPET = "train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
DET_DOG = "train/ILSVRC2014_train_0000/ILSVRC2014_train_00000001"
DET_EMPTY = "train/ILSVRC2014_train_0000/ILSVRC2014_train_00000002"
VAL_A = "val/ILSVRC2015_val_00000000"
VAL_B = "val/ILSVRC2015_val_00000001"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def frame_xml(width: int, height: int, objects: str = "") -> str:
    return f"""\
        <annotation>
          <folder>x</folder><filename>x</filename>
          <source><database>ILSVRC_2015</database></source>
          <size><width>{width}</width><height>{height}</height></size>
          {objects}
        </annotation>
        """


def make_vid_tree(root: Path) -> Path:
    """A tiny tree with hand-picked edge cases; the expected values are spelled out in test_vid.py."""
    ann, data = root / "Annotations", root / "Data"
    # Frame 0: a box touching the right border (xmax == width) and an object whose tags come in unusual order,
    # with occluded / generated flags set.
    write(ann / "VID" / SNIPPET / "000000.xml", frame_xml(100, 80, """
          <object><trackid>0</trackid><name>n02691156</name>
            <bndbox><xmax>100</xmax><xmin>10</xmin><ymax>40</ymax><ymin>5</ymin></bndbox>
            <occluded>0</occluded><generated>0</generated></object>
          <object><generated>1</generated><bndbox><ymin>20</ymin><xmax>70</xmax><ymax>60</ymax><xmin>30</xmin>
            </bndbox><occluded>1</occluded><name>n02391049</name><trackid>3</trackid></object>"""))
    write(ann / "VID" / SNIPPET / "000001.xml", frame_xml(100, 80))  # no object at all
    write(ann / "VID" / SNIPPET / "000002.xml", frame_xml(100, 80, """
          <object><trackid>0</trackid><name>n02691156</name>
            <bndbox><xmin>12</xmin><ymin>6</ymin><xmax>50</xmax><ymax>80</ymax></bndbox>
            <occluded>0</occluded><generated>1</generated><degraded>1</degraded></object>"""))
    # DET image: a dog, a person (a DET-only class, dropped) and a bird; DET objects have no trackid.
    write(ann / "DET" / (DET_DOG + ".xml"), frame_xml(60, 50, """
          <object><name>n02084071</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax>
            </bndbox></object>
          <object><name>n00007846</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>5</xmax><ymax>5</ymax>
            </bndbox></object>
          <object><name>n01503061</name><bndbox><xmin>40</xmin><ymin>10</ymin><xmax>60</xmax><ymax>20</ymax>
            </bndbox></object>"""))
    write(ann / "DET" / (DET_EMPTY + ".xml"), frame_xml(40, 30))
    for name, frames in ((VAL_A, 2), (VAL_B, 1)):
        for f in range(frames):
            write(ann / "VID" / name / f"{f:06d}.xml", frame_xml(32, 24, f"""
              <object><trackid>{f}</trackid><name>n02958343</name>
                <bndbox><xmin>{f}</xmin><ymin>1</ymin><xmax>{f + 9}</xmax><ymax>9</ymax></bndbox></object>"""))
    sets = root / "ImageSets"
    write(sets / "VID_train_15frames.txt", f"{SNIPPET} 1 0 3\n{SNIPPET} 1 2 3\n")
    # Like the real file: a duplicated line and no trailing newline.
    (sets / "DET_train_30classes.txt").write_text(f"{DET_DOG} 1\n{DET_EMPTY} 1\n{DET_DOG} 1")
    write(sets / "VID_val_videos.txt", f"{VAL_A} 1 0 2\n{VAL_B} 3 0 1\n")
    write(sets / "VID_val_frames.txt", f"{VAL_A}/000000 1\n{VAL_A}/000001 2\n{VAL_B}/000000 3\n")
    # Images exist for the train snippet only; the reader never opens them.
    for f in range(3):
        path = data / "VID" / SNIPPET / f"{f:06d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 80), (f * 40, 90, 200)).save(path, quality=90)
    return root


@pytest.fixture
def vid_tree(tmp_path) -> Path:
    return make_vid_tree(tmp_path / "ILSVRC2015")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small synthetic dataset shared by the tests that only read it."""
    from dsfnet.data.synth import generate_synthetic_vid

    return generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "ILSVRC2015", num_videos=12, seed=3,
                                  num_val_videos=3, num_frames=30, num_det_images=6, size=(96, 80))
