"""VideoPredictor: cached vs exact, support plan, frame order, backbone once per frame, memory-bounded window."""

from __future__ import annotations

import numpy as np
import pytest

from dsfnet.data.sampling import support_frames
from dsfnet.inference.plan import plan_support
from dsfnet.inference.predictor import VideoPredictor
from dsfnet.inference.video_io import FrameListSource, FrameSource

from inferencehelpers import make_model, moving_square


class MemorySource(FrameSource):
    """Frames held in memory; counts how often each frame is decoded."""

    def __init__(self, frames: list[np.ndarray]):
        self._frames = frames
        self.name = self.path = "memory"
        self.reads = 0

    def count(self) -> int:
        return len(self._frames)

    def frames(self, stop=None):
        for frame in self._frames[:stop]:
            self.reads += 1
            yield frame


def random_frames(count: int, width: int = 80, height: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(moving_square(i, width, height).astype(int) + rng.integers(-30, 30, (height, width, 3)), 0, 255)
            .astype(np.uint8) for i in range(count)]


def run(model, config, frames, **options):
    predictor = VideoPredictor(model, config, **options)
    return list(predictor.predict(MemorySource(frames)))


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``[len(a), len(b)]`` of continuous boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda box: (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter + 1e-9)


def compare(results_a, results_b, top: int = 0) -> dict:
    """Match every detection of A (the ``top`` best per frame when > 0) to the same-label detection of B with the
    highest IoU (one-to-one, by A's score order) and report the worst differences."""
    worst = {"score": 0.0, "box": 0.0, "min_iou": 1.0, "unmatched": 0, "count_diff": 0}
    for a, b in zip(results_a, results_b, strict=True):
        assert a.index == b.index
        worst["count_diff"] = max(worst["count_diff"], abs(len(a.scores) - len(b.scores)))
        keep = len(a.scores) if top <= 0 else min(top, len(a.scores))
        taken = np.zeros(len(b.scores), bool)
        overlaps = iou(a.boxes[:keep], b.boxes) if len(b.scores) else np.zeros((keep, 0))
        for k in range(keep):
            candidates = np.where((b.labels == a.labels[k]) & ~taken)[0]
            if not len(candidates):
                worst["unmatched"] += 1
                continue
            best = candidates[np.argmax(overlaps[k, candidates])]
            taken[best] = True
            worst["score"] = max(worst["score"], float(abs(a.scores[k] - b.scores[best])))
            worst["box"] = max(worst["box"], float(np.abs(a.boxes[k] - b.boxes[best]).max()))
            worst["min_iou"] = min(worst["min_iou"], float(overlaps[k, best]))
    return worst


@pytest.mark.parametrize("sampling", ["shuffled", "stride"])
def test_cached_equals_exact_for_frame_variant(sampling):
    """Acceptance 3: same support frames -> identical detections (frame fusion reads the support's raw conv4)."""
    model, config = make_model("frame")
    frames = random_frames(9)
    cached = run(model, config, frames, num_frames=4, sampling=sampling, stride=2, mode="cached")
    exact = run(model, config, frames, num_frames=4, sampling=sampling, stride=2, mode="exact")
    # the fusion is not the identity: a baseline (no fusion) run differs
    baseline = run(model, config, frames, num_frames=1, mode="exact")
    assert compare(cached, baseline)["score"] > 1e-4
    diff = compare(cached, exact)
    assert diff["count_diff"] == 0 and diff["unmatched"] == 0, diff
    assert diff["score"] < 1e-5 and diff["box"] < 1e-2, diff
    for a, b in zip(cached, exact, strict=True):  # and bit for bit: the same memory frames in the same order
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores), a.index
        assert np.array_equal(a.labels, b.labels), a.index


def test_predicting_leaves_the_model_as_it_was():
    """The predictor runs the model in eval mode and gives it back in its own mode; it never moves it."""
    import torch

    model, config = make_model("dsfnet")
    model.train()
    results = run(model, config, random_frames(3), num_frames=3)
    assert model.training and all(module.training for module in model.modules())
    assert len(results) == 3
    with pytest.raises(ValueError, match="the model is on cpu, not on meta"):
        VideoPredictor(model, config, device=torch.device("meta"))


def test_cached_vs_exact_for_dsfnet_is_bounded(capsys):
    """For dsfnet, cached support instances are fused among the support set only (not re-enhanced by each test
    frame, DESIGN §4), so the two modes differ; bound the difference of the top detections loosely."""
    model, config = make_model("dsfnet")
    frames = random_frames(9)
    cached = run(model, config, frames, num_frames=4, mode="cached")
    exact = run(model, config, frames, num_frames=4, mode="exact")
    diff = compare(cached, exact, top=10)
    with capsys.disabled():
        print(f"\ndsfnet cached vs exact (top-10 per frame, randomised fusion): {diff}")
    assert diff["unmatched"] <= 9  # at most one per frame loses its same-label partner
    assert diff["score"] < 0.05, diff
    assert diff["min_iou"] > 0.5, diff


def test_bf16_precision_runs_the_model_in_bf16_and_stays_close(capsys):
    """``precision='bf16'``: convolutions and attention matmuls in bfloat16 (autocast), outputs in float32."""
    import torch

    model, config = make_model("dsfnet")
    frames = random_frames(6)
    seen = set()
    conv = next(module for module in model.backbone.modules() if isinstance(module, torch.nn.Conv2d))
    hook = conv.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    low = run(model, config, frames, num_frames=4, precision="bf16")
    hook.remove()
    full = run(model, config, frames, num_frames=4)
    assert torch.bfloat16 in seen
    assert all(r.boxes.dtype == np.float32 and r.scores.dtype == np.float32 for r in low)
    diff = compare(full, low, top=5)
    with capsys.disabled():
        print(f"\ndsfnet fp32 vs bf16 (top-5 per frame, randomised fusion): {diff}")
    assert diff["score"] < 0.1 and diff["min_iou"] > 0.5, diff
    with pytest.raises(ValueError, match="precision"):
        VideoPredictor(model, config, precision="fp16")


def test_support_plan_matches_support_frames():
    for num_frames, n in ((1, 3), (2, 4), (5, 5), (12, 4), (30, 7)):
        for sampling in ("shuffled", "stride"):
            plan = plan_support(num_frames, n, sampling, stride=2, seed=3)
            for t in range(num_frames):
                assert plan.support(t) == support_frames(num_frames, t, n, sampling, stride=2, seed=3)
            if sampling == "shuffled":
                assert len(plan.pinned) <= n
                if num_frames >= n:
                    assert all(t not in plan.support(t) for t in range(num_frames))


@pytest.mark.parametrize("variant,mode,sampling", [
    ("dsfnet", "cached", "shuffled"), ("dsfnet", "exact", "shuffled"), ("dsfnet", "cached", "stride"),
    ("instance", "exact", "stride"), ("baseline", "cached", "shuffled")])
def test_backbone_runs_once_per_frame_and_order(variant, mode, sampling):
    model, config = make_model(variant)
    seen = []
    original = model.conv4

    def counting(frames):
        seen.append(frames.shape[0])
        return original(frames)

    model.conv4 = counting
    frames = random_frames(8, 40, 32)
    source = MemorySource(frames)
    results = list(VideoPredictor(model, config, num_frames=4, sampling=sampling, stride=2, mode=mode)
                   .predict(source))
    assert [r.index for r in results] == list(range(8))
    assert sum(seen) == 8
    assert all(np.array_equal(r.image, f) for r, f in zip(results, frames))
    # decoded at most twice: the support pass (stops after the last support frame) and the stream
    assert source.reads <= 16


def test_stride_window_is_bounded():
    """Stride mode keeps only the conv4 maps later frames still need (about 2·reach + 1), not the whole video;
    shuffled mode keeps the <= n support maps plus the current frame."""
    model, config = make_model("frame")
    frames = random_frames(18, 32, 32)
    predictor = VideoPredictor(model, config, num_frames=5, sampling="stride", stride=2, mode="exact")
    list(predictor.predict(MemorySource(frames)))
    reach = (5 // 2) * 2
    assert predictor.stats["backbone_frames"] == 18
    assert predictor.stats["max_stored"] <= 2 * reach + 1, predictor.stats
    predictor = VideoPredictor(model, config, num_frames=5, sampling="shuffled", mode="cached")
    list(predictor.predict(MemorySource(frames)))
    assert predictor.stats["max_stored"] <= 5 + 1, predictor.stats
    assert predictor.stats["support_memories"] == 1, predictor.stats  # one memory of the global set + substitute


def test_score_threshold_classes_and_original_resolution():
    model, config = make_model("dsfnet")
    frames = random_frames(4, 200, 150)  # resized to 160 long side... by tiny.yaml (min 128, max 160)
    names = list(VideoPredictor(model, config).class_names)
    results = run(model, config, frames, score_thresh=0.2, classes=names[:5])
    for result in results:
        assert (result.scores >= 0.2).all()
        assert set(result.labels.tolist()) <= set(range(1, 6))
        assert result.class_names == [names[label - 1] for label in result.labels]
        assert np.all(np.diff(result.scores) <= 0)
        if len(result.boxes):  # boxes in the 200x150 original frame, beyond the 160x120 resized one
            assert result.boxes[:, 0::2].max() <= 200 + 1e-3 and result.boxes[:, 1::2].max() <= 150 + 1e-3
    with pytest.raises(ValueError, match="unknown class name.*'unicorn'.*valid classes: airplane"):
        VideoPredictor(model, config, classes=["unicorn"])


def test_boxes_scale_back_to_the_original_frames():
    """A frame twice as large is resized to the network input: the detections of that input at twice the
    coordinates. The small frames are the large ones resized as the predictor resizes them (PIL bilinear), so both
    runs see the same network input (a 2x-repeated frame resized back is blurred, which moved the detections of
    a random-weight model by up to 60 px: not the property under test)."""
    from PIL import Image

    model, config = make_model("frame")
    config.data.min_size, config.data.max_size = 64, 80
    large = random_frames(3, 160, 128)  # resized by 0.5
    small = [np.asarray(Image.fromarray(frame).resize((80, 64), Image.BILINEAR)) for frame in large]
    a = run(model, config, small, num_frames=3)
    b = run(model, config, large, num_frames=3)
    for result in a:
        result.boxes = result.boxes * 2
    diff = compare(a, b, top=5)
    assert diff["min_iou"] > 0.999 and diff["unmatched"] == 0 and diff["score"] < 1e-6, diff


def test_frame_list_source_and_folder(tmp_path):
    from PIL import Image

    paths = []
    for i in (10, 2, 1):
        path = tmp_path / f"frame{i}.png"
        Image.fromarray(moving_square(i, 40, 30)).save(path)
        paths.append(path)
    from dsfnet.inference.video_io import open_source

    source = open_source(tmp_path)
    assert isinstance(source, FrameListSource) and source.count() == 3
    assert [p.rsplit("/", 1)[-1] for p in source.paths] == ["frame1.png", "frame2.png", "frame10.png"]
    assert [f.shape for f in source.frames()] == [(30, 40, 3)] * 3
    Image.fromarray(moving_square(0, 20, 20)).save(tmp_path / "frame11.png")
    with pytest.raises(ValueError, match="frame11.png.*differs from the first frame"):
        list(open_source(tmp_path).frames())
