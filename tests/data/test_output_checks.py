"""Issue 12 for ``dsfnet synth``, ``convert`` and ``demo``: no dataset mixed with an older one, sizes that cannot
fit in memory, --out naming the wrong kind of path, read-only folders, no stale side-by-side video, 16-bit PNGs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dsfnet import cli
from dsfnet.config import load_config
from dsfnet.data import synth
from dsfnet.data.images import load_frame
from dsfnet.demo import run_demo
from dsfnet.engine.checkpoint import save_checkpoint, training_checkpoint
from dsfnet.models.build import build_model
from faulthelpers import make_read_only, one_line_error, snapshot
from test_synth import _digest

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
SMALL = ["--videos", "2", "--val-videos", "1", "--frames", "3", "--det-images", "1", "--size", "72x64"]


def synth_cli(out, *extra) -> int:
    return cli.main(["synth", str(out), *SMALL, *extra])


@pytest.fixture
def dataset(tmp_path):
    assert synth_cli(tmp_path / "data") == 0
    return tmp_path / "data"


def test_synth_refuses_a_non_empty_folder(dataset, capsys):
    before = snapshot(dataset)
    code = synth_cli(dataset, "--frames", "2", "--seed", "4")
    one_line_error(capsys, code, "synth", f"{dataset} is not empty", "--overwrite")
    assert snapshot(dataset) == before


def test_synth_overwrite_replaces_the_dataset_whole(dataset, tmp_path):
    (dataset / "notes.txt").write_text("left from before")
    assert synth_cli(dataset, "--overwrite", "--frames", "2", "--videos", "1", "--seed", "4") == 0
    assert synth_cli(tmp_path / "fresh", "--frames", "2", "--videos", "1", "--seed", "4") == 0
    assert _digest(dataset) == _digest(tmp_path / "fresh")  # no old frame, XML or file left in it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "fresh"]  # no temporary sibling left


@pytest.mark.parametrize("size, needle", [("100000x100000", "at most 65500 px a side"),
                                          ("40000x30000", "need about 111.8 GiB of memory")])
def test_synth_refuses_frames_that_cannot_fit_before_allocating(tmp_path, capsys, monkeypatch, size, needle):
    monkeypatch.setattr(synth, "_available_memory", lambda: 8 * 2**30)  # this machine's size must not matter
    started = time.perf_counter()
    code = cli.main(["synth", str(tmp_path / "data"), "--size", size])
    one_line_error(capsys, code, "synth", "(--size)", size, needle)
    assert time.perf_counter() - started < 2 and list(tmp_path.iterdir()) == []


def test_synth_into_a_read_only_folder(dataset, capsys, monkeypatch):
    before = snapshot(dataset.parent)
    make_read_only(monkeypatch, dataset.parent)
    code = synth_cli(dataset, "--overwrite")
    one_line_error(capsys, code, "synth", f"cannot write {dataset}: read-only file system")
    monkeypatch.undo()
    assert snapshot(dataset.parent) == before


def test_convert_out_naming_a_folder_or_a_read_only_file(dataset, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "json"
    folder.mkdir()
    code = cli.main(["convert", str(dataset), "--split", "VID_val_videos", "--out", str(folder)])
    one_line_error(capsys, code, "convert", f"--out {folder} is a folder")
    assert list(folder.iterdir()) == []
    assert cli.main(["convert", str(dataset), "--split", "VID_val_videos", "--out", str(folder / "val.json")]) == 0
    before = snapshot(folder)
    make_read_only(monkeypatch, folder)
    code = cli.main(["convert", str(dataset), "--split", "VID_train_15frames", "--out", str(folder / "val.json")])
    one_line_error(capsys, code, "convert", f"cannot write {folder / 'val.json'}: read-only file system")
    monkeypatch.undo()
    assert snapshot(folder) == before


def test_demo_out_naming_a_file_or_a_read_only_folder(tmp_path, capsys, monkeypatch):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    code = cli.main(["demo", "--out", str(path)])
    one_line_error(capsys, code, "demo", f"--out {path} exists and is not a folder")
    assert path.read_text() == "mine"
    out = tmp_path / "demo"
    (out / "baseline").mkdir(parents=True)
    (out / "demo_report.txt").write_text("an earlier demo")
    before = snapshot(out)
    make_read_only(monkeypatch, out)
    code = cli.main(["demo", "--out", str(out), "--videos", "1", "--frames", "3"])
    one_line_error(capsys, code, "demo", f"cannot write {out / 'data'}: read-only file system")
    monkeypatch.undo()
    assert snapshot(out) == before


def _checkpoint(path, variant):
    config = load_config(TINY, [f"model.variant={variant}", "data.min_size=64", "data.max_size=80"])
    torch.manual_seed(0)
    return save_checkpoint(path, training_checkpoint(build_model(config.model), config, iteration=0))


def test_demo_leaves_no_stale_video_or_videos_of_an_earlier_demo(tmp_path):
    weights = {name: _checkpoint(tmp_path / f"{name}.pth", name) for name in ("baseline", "dsfnet")}
    out = tmp_path / "demo"
    stale_frame = out / "data" / "Data" / "VID" / "val" / "ILSVRC2015_val_00000007" / "000000.JPEG"
    stale_frame.parent.mkdir(parents=True)
    stale_frame.write_bytes(b"an earlier demo's frame")
    (out / "side_by_side.mp4").write_bytes(b"an earlier demo's video")
    run_demo(out, num_videos=1, num_frames=3, write_video=False, weights=weights)
    assert not (out / "side_by_side.mp4").exists() and not stale_frame.exists()
    assert (out / "data" / "Data" / "VID" / "val" / "ILSVRC2015_val_00000000" / "000002.JPEG").is_file()


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 1000, 60000]], np.uint16)
    Image.fromarray(values).save(tmp_path / "gray16.png")
    image = np.asarray(load_frame(tmp_path / "gray16.png"))
    expected = np.array([[0, 1, 128], [255, 4, 233]], np.uint8)  # round(v / 257)
    assert image.shape == (2, 3, 3) and np.array_equal(image[..., 0], expected)
    assert np.array_equal(image[..., 0], image[..., 2])
