"""Issue 12 for ``dsfnet detect``: --score-thr range, no stale annotated video, a read-only --out and a full disk,
--weights naming a folder, --n larger than the video, 16-bit PNG frames."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from dsfnet.engine.checkpoint import load_model
from dsfnet.engine.run_dir import lock_name
from dsfnet.inference.predictor import VideoPredictor
from dsfnet.inference.video_io import open_source
from faulthelpers import fail_writes, make_read_only, one_line_error, snapshot
from inferencehelpers import write_video


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "clip.mp4", 6, 64, 48)


@pytest.fixture
def earlier_out(tmp_path):
    """An --out folder holding an earlier run's results."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "detections.jsonl").write_text('{"video": "old.mp4", "frame_index": 0, "detections": []}\n')
    (out / "annotated.mp4").write_bytes(b"an earlier video")
    return out


def detect(cli, video, checkpoint, out, *extra) -> int:
    return cli(["detect", str(video), "--weights", str(checkpoint), "--out", str(out), "--no-progress", *extra])


@pytest.mark.parametrize("value", ["2", "nan", "-1", "1.0001", "inf"])
def test_score_threshold_outside_zero_one_is_refused(cli, checkpoint, video, tmp_path, capsys, value):
    code = detect(cli, video, checkpoint, tmp_path / "out", "--score-thr", value)
    one_line_error(capsys, code, "detect", "--score-thr must be in [0, 1]")
    assert not (tmp_path / "out").exists()


def test_no_video_removes_the_earlier_annotated_video(cli, checkpoint, video, earlier_out, capsys):
    assert detect(cli, video, checkpoint, earlier_out, "--no-video", "--n", "3") == 0
    assert sorted(p.name for p in earlier_out.iterdir()) == ["detections.jsonl"]
    assert '"clip.mp4"' in (earlier_out / "detections.jsonl").read_text()
    assert f"removed {earlier_out / 'annotated.mp4'}" in capsys.readouterr().out


def test_read_only_out_is_a_one_line_error(cli, checkpoint, video, earlier_out, capsys, monkeypatch):
    before = snapshot(earlier_out)
    make_read_only(monkeypatch, earlier_out)
    code = detect(cli, video, checkpoint, earlier_out, "--n", "3")
    # the folder's lock is the first file a run writes there
    one_line_error(capsys, code, "detect", f"cannot write {earlier_out / lock_name('detect')}: read-only file system")
    monkeypatch.undo()
    assert snapshot(earlier_out) == before


def test_full_disk_is_a_one_line_error(cli, checkpoint, video, earlier_out, capsys, monkeypatch):
    before = snapshot(earlier_out)
    failed = fail_writes(monkeypatch, earlier_out, ".detections.jsonl.*.tmp")
    code = detect(cli, video, checkpoint, earlier_out, "--no-video", "--n", "3")
    one_line_error(capsys, code, "detect", f"no space left on device while writing {earlier_out / 'detections.jsonl'}")
    monkeypatch.undo()
    assert len(failed) == 1 and snapshot(earlier_out) == before  # the earlier video stays with its detections


def test_weights_naming_a_folder(cli, checkpoint, video, tmp_path, capsys):
    code = detect(cli, video, checkpoint.parent, tmp_path / "out")
    one_line_error(capsys, code, "detect", f"checkpoint {checkpoint.parent} is a folder, not a checkpoint file")


def test_n_larger_than_the_video_is_capped_at_its_length(cli, checkpoint, video, tmp_path, caplog):
    model, config = load_model(checkpoint)
    plan = VideoPredictor(model, config, num_frames=1000).plan(6)
    for t in range(6):
        support = plan.support(t)
        assert len(support) == 5 and len(set(support)) == 5 and t not in support  # no frame twice in a clip
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dsfnet.inference.predictor"):
        assert detect(cli, video, checkpoint, tmp_path / "out", "--n", "1000", "--no-video") == 0
    notes = [r.getMessage() for r in caplog.records if r.name == "dsfnet.inference.predictor"]
    assert notes == ["the video has 6 frames: using n = 6 instead of 1000"]


def test_sixteen_bit_png_frames_are_scaled_to_eight_bits(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    gray16 = (np.arange(48 * 64, dtype=np.int64).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    for index in range(2):
        Image.fromarray(gray16).save(folder / f"{index:03d}.png")
    assert Image.open(folder / "000.png").mode.startswith("I;16")
    frames = list(open_source(folder).frames())
    expected = np.round(gray16 / 257.0).astype(np.uint8)
    assert len(frames) == 2 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert np.array_equal(frames[0], np.repeat(expected[..., None], 3, axis=2))
    assert 0 < frames[0].mean() < 255  # neither white nor black
