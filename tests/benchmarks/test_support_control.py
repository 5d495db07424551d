"""The different-video control: support from another video goes through the same cached path as evaluation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from support_control import other_video_detections  # noqa: E402

from dsfnet.data.records import DatasetRecord  # noqa: E402
from dsfnet.data.sampling import shuffled_support_order  # noqa: E402
from dsfnet.data.synth import generate_synthetic_vid  # noqa: E402
from dsfnet.data.vid import read_vid_split  # noqa: E402
from dsfnet.inference.evaluate import predict_dataset  # noqa: E402
from dsfnet.models.build import build_model  # noqa: E402


TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "vid", 0, 5, num_val_videos=2, num_frames=6)
    return read_vid_split(root, "VID_val_videos")


@pytest.fixture(scope="module")
def model_and_config():
    from dsfnet.config import load_config
    config = load_config(TINY, ["model.variant=dsfnet", "test.num_frames=3", "test.sampling=shuffled",
                                       "test.mode=cached"])
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    for fusion in [model.frame_fusion.theta, *[f.gamma for f in model.instance_fusions]]:
        torch.nn.init.normal_(fusion.weight, std=0.05)  # non-zero value projections: support frames matter
    return model, config


def by_frame(detections, frame: int) -> np.ndarray:
    """``[k, 6]`` rows (box, score, label) of one frame, by label then box (scores equal to float rounding can
    swap places in score order)."""
    mine = detections.select(np.flatnonzero(detections.frame_ids == frame))
    rows = np.concatenate([mine.boxes, mine.scores[:, None], mine.labels[:, None]], 1)
    return rows[np.lexsort((*np.round(rows[:, 3::-1].T, 2), rows[:, 5]))]


def test_own_video_as_the_other_equals_cached_evaluation(held_out, model_and_config):
    """With a one-video split the 'next' video is the video itself: the control's detections are evaluation's
    for every frame that is not one of the shared support frames (those are evaluated without themselves)."""
    model, config = model_and_config
    one = DatasetRecord(held_out.videos[:1], held_out.class_names)
    control = other_video_detections(model, one, 3, config.data.min_size, config.data.max_size, config.test.seed)
    normal = predict_dataset(model, one, config, "cpu", progress=False)
    support = set(shuffled_support_order(len(one.videos[0].frames), config.test.seed)[:2])
    compared = [t for t in range(len(one.videos[0].frames)) if t not in support]
    assert compared and len(control)
    for t in compared:
        np.testing.assert_allclose(by_frame(control, t), by_frame(normal, t), rtol=1e-5, atol=1e-4)


def test_other_video_support_changes_the_detections(held_out, model_and_config):
    model, config = model_and_config
    control = other_video_detections(model, held_out, 3, config.data.min_size, config.data.max_size)
    normal = predict_dataset(model, held_out, config, "cpu", progress=False)
    assert len(control.frame_ids) and set(control.frame_ids.tolist()) <= set(range(12))
    assert not np.array_equal(control.scores, normal.scores)
