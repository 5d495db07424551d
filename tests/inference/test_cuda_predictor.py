"""``VideoPredictor`` on the GPU against the CPU, ``cached`` == ``exact`` there, and every streamed plan in bf16
(``cuda`` tests)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from dsfnet.inference.geometry import Geometry
from dsfnet.inference.predictor import VideoPredictor

from inferencehelpers import make_model
from test_predictor import compare, random_frames, run

pytestmark = pytest.mark.cuda


@pytest.fixture
def no_tf32():
    """Full float32 matmuls and convolutions on the GPU (cuDNN's default TF32 keeps 10 bits of mantissa)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_gpu_detections_match_the_cpu_within_tolerance(gpu, no_tf32, capsys):
    """fp32 on both: the same top-10 detections per frame, scores within 1e-3, box corners within 0.1 px
    (the kernels sum in other orders: differences of ~1e-6 relative, grown through two fusions and NMS)."""
    model, config = make_model("dsfnet")
    frames = random_frames(9)
    on_cpu = run(model, config, frames, num_frames=4)
    on_gpu = run(copy.deepcopy(model).to(gpu), config, frames, num_frames=4)
    diff = compare(on_cpu, on_gpu, top=10)
    with capsys.disabled():
        print(f"\ndsfnet CPU vs {gpu.type} fp32 (top-10 per frame): {diff}")
    assert diff["unmatched"] == 0 and diff["score"] < 1e-3 and diff["box"] < 0.1, diff


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("sampling", ["shuffled", "stride"])
def test_cached_equals_exact_for_the_frame_variant(gpu, precision, sampling):
    model, config = make_model("frame")
    model.to(gpu)
    frames = random_frames(9)
    options = dict(num_frames=4, sampling=sampling, stride=2, precision=precision)
    cached = run(model, config, frames, mode="cached", **options)
    exact = run(model, config, frames, mode="exact", **options)
    for a, b in zip(cached, exact, strict=True):  # bit for bit: the same memory frames in the same order
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores), a.index
        assert np.array_equal(a.labels, b.labels), a.index


@pytest.mark.parametrize("sampling", ["causal", "shuffled_window"])
def test_streamed_plans_in_bf16_stay_close_to_fp32(gpu, sampling, tmp_path):
    """Causal memories (joined into reused buffers) and the shuffled window, bf16 against fp32 on the same device."""
    model, config = make_model("dsfnet")
    model.to(gpu)
    for index, frame in enumerate(random_frames(8)):
        Image.fromarray(frame).save(tmp_path / f"{index:06d}.png")
    results = {precision: list(VideoPredictor(model, config, num_frames=4, sampling=sampling, precision=precision)
                               .predict(str(tmp_path))) for precision in ("fp32", "bf16")}
    assert all(r.boxes.dtype == np.float32 and np.isfinite(r.boxes).all() for r in results["bf16"])
    diff = compare(results["fp32"], results["bf16"], top=5)
    assert diff["score"] < 0.1 and diff["min_iou"] > 0.5, diff


def test_frames_reach_the_gpu_unchanged(gpu):
    """The pinned, non-blocking copy of a frame gives the CPU's tensor (read right after, on the same stream)."""
    frame = random_frames(1, width=200, height=120)[0]
    geometry = Geometry.of(120, 200, 96, 160)
    on_gpu = geometry.prepare(frame, gpu)
    assert on_gpu.device.type == gpu.type
    assert torch.equal(on_gpu.cpu(), geometry.prepare(frame, torch.device("cpu")))
