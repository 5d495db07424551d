"""Causal (online) inference and shuffled_window: what each test frame is fused with, no read-ahead, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dsfnet.inference.causal import shuffled_window_steps
from dsfnet.inference.predictor import VideoPredictor
from dsfnet.inference.video_io import FrameListSource, FrameSource

from inferencehelpers import make_model
from test_predictor import compare, random_frames


class DeliveredOnly(FrameSource):
    """A live-like source that hands out frame t only once the consumer has received the result of frame t-1:
    asking for a frame that has not been delivered yet fails the test, and so does counting the frames."""

    live = True

    def __init__(self, frames: list[np.ndarray]):
        self._frames = frames
        self.name = self.path = "delivered-only"
        self.results_received = 0

    def count(self):
        raise AssertionError("a causal run must not count the frames")

    def frames(self, stop=None):
        for index, frame in enumerate(self._frames):
            if index > self.results_received:
                raise AssertionError(f"frame {index} asked for before the result of frame {index - 1} was taken")
            yield frame


def saved_as_images(frames: list[np.ndarray], folder) -> list:
    """The frames written as ``0.png``, ``1.png``, ... in ``folder``; their paths in order."""
    paths = [folder / f"{index}.png" for index in range(len(frames))]
    for frame, path in zip(frames, paths):
        Image.fromarray(frame).save(path)
    return paths


def spy(model):
    """Record the output of every backbone run (``conv4``, in call order) and the conv4 clip of every
    ``detect_exact`` call (support frames first, test frame last)."""
    backbone, clips = [], []
    conv4, detect_exact = model.conv4, model.detect_exact

    def recording_conv4(frames):
        backbone.append(conv4(frames))
        return backbone[-1]

    def recording_detect(clip, image_size, key=0):
        clips.append(clip)
        return detect_exact(clip, image_size, key)

    model.conv4, model.detect_exact = recording_conv4, recording_detect
    return backbone, clips


def frame_of(row: torch.Tensor, conv4s: list[torch.Tensor]) -> int:
    matches = [i for i, conv4 in enumerate(conv4s) if torch.equal(row, conv4[0])]
    assert len(matches) == 1
    return matches[0]


@pytest.mark.parametrize("memory", ["recent", "spread"])
def test_causal_never_reads_ahead_and_fuses_with_past_frames_only(memory):
    """Acceptance 1: frames come from a source that fails on a frame not yet delivered; every clip holds distinct
    past frames, at most n-1 of them, and the memory never holds more than n-1 frames."""
    model, config = make_model("dsfnet")
    frames = random_frames(12, 48, 40)
    predictor = VideoPredictor(model, config, num_frames=4, sampling="causal", memory=memory, mode="exact")
    conv4s, clips = spy(model)  # frames arrive in order: backbone run t is frame t
    source = DeliveredOnly(frames)
    results = []
    for result in predictor.predict(source):
        results.append(result)
        source.results_received += 1
    assert [result.index for result in results] == list(range(12))
    assert predictor.stats["backbone_frames"] == 12
    assert predictor.stats["max_stored"] <= 3
    assert len(conv4s) == 12
    supports = []
    for t, clip in enumerate(clips):
        members = [frame_of(row, conv4s) for row in clip]
        assert members[-1] == t
        support = members[:-1]
        assert len(support) == len(set(support)) == min(t, 3), (t, support)  # no frame twice in a clip
        assert all(frame < t for frame in support)
        supports.append(sorted(support))
    if memory == "recent":
        assert supports == [sorted(range(max(0, t - 3), t)) for t in range(12)]
    else:
        assert any(min(s) == 0 for s in supports[6:])  # spread keeps old frames


@pytest.mark.parametrize("memory", ["recent", "spread"])
def test_causal_cached_equals_causal_exact_for_the_frame_variant(memory):
    """Acceptance 3, causal: the same support frames -> the same detections, bit for bit, in cached and exact."""
    model, config = make_model("frame")
    frames = random_frames(10)
    runs = {mode: list(VideoPredictor(model, config, num_frames=4, sampling="causal", memory=memory, mode=mode)
                       .stream(frames)) for mode in ("cached", "exact")}
    for cached, exact in zip(runs["cached"], runs["exact"], strict=True):
        assert np.array_equal(cached.boxes, exact.boxes) and np.array_equal(cached.scores, exact.scores)
        assert np.array_equal(cached.labels, exact.labels)
    # the fusion is not the identity: the single-frame run differs
    alone = list(VideoPredictor(model, config, num_frames=1, sampling="causal").stream(frames))
    assert compare(runs["cached"], alone)["score"] > 1e-4


def test_stream_takes_arrays_and_pil_images_and_yields_before_reading_on():
    model, config = make_model("dsfnet")
    frames = random_frames(5, 40, 32)
    read = []

    def camera():
        for index, frame in enumerate(frames):
            read.append(index)
            yield Image.fromarray(frame) if index % 2 else frame

    predictor = VideoPredictor(model, config, num_frames=3, sampling="causal")
    for result in predictor.stream(camera()):
        assert read[-1] == result.index
        assert np.array_equal(result.image, frames[result.index])
    assert predictor.stats["frames"] == 5
    with pytest.raises(ValueError, match="sampling='causal'"):
        next(VideoPredictor(model, config, sampling="shuffled").stream(frames))


def test_offline_sampling_on_a_live_source_says_to_use_causal():
    model, config = make_model("dsfnet")
    with pytest.raises(ValueError, match="live stream.*--sampling causal"):
        next(VideoPredictor(model, config, sampling="shuffled").predict(DeliveredOnly(random_frames(2))))


def test_shuffled_window_fuses_each_frame_with_its_shuffled_neighbours(tmp_path):
    model, config = make_model("dsfnet")
    frames = random_frames(9, 48, 40)
    paths = saved_as_images(frames, tmp_path)
    predictor = VideoPredictor(model, config, num_frames=4, sampling="shuffled_window", mode="exact", seed=5)
    conv4s, clips = spy(model)
    source = ReadLog(paths, name="v")
    results = list(predictor.predict(source))
    assert [result.index for result in results] == list(range(9))
    assert all(np.array_equal(result.image, frame) for result, frame in zip(results, frames))
    assert predictor.stats["backbone_frames"] == 9
    assert predictor.stats["max_stored"] <= 4
    assert sorted(source.reads[:9]) == list(range(9))  # each frame read once for the backbone (then for drawing)
    conv4s = [conv4s[source.reads.index(frame)] for frame in range(9)]
    for step, clip in zip(shuffled_window_steps(9, 4, seed=5), clips, strict=True):
        members = [frame_of(row, conv4s) for row in clip]
        assert members[-1] == step.test and sorted(members[:-1]) == sorted(step.support)
    with pytest.raises(ValueError, match="folder of frames"):
        list(predictor.predict(VideoLikeSource(frames)))


class ReadLog(FrameListSource):
    """Image files that log the order in which frames are read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = []

    def frame(self, index):
        self.reads.append(index)
        return super().frame(index)


class VideoLikeSource(FrameSource):
    """Frames read in order only, like a video file's."""

    name = path = "video.mp4"

    def __init__(self, frames):
        self._frames = frames

    def count(self):
        return len(self._frames)

    def frames(self, stop=None):
        yield from self._frames[:stop]


def test_causal_cached_computes_each_contribution_once_from_the_frames_own_test():
    """Incremental cost: per frame one backbone run, one head pass and one projection of its conv4 tokens; no
    support memory is ever built from conv4; every test frame reads at most n-1 memory frames."""
    model, config = make_model("dsfnet")
    calls = {"keys_values": [], "passes": [], "support_memory": 0}
    keys_values, detect_and_remember = model.frame_fusion.keys_values, model.detect_and_remember

    def counting_keys_values(feats):
        calls["keys_values"].append(feats.shape[0])
        return keys_values(feats)

    def counting_passes(conv4, image_size, memory=None):
        calls["passes"].append(0 if memory is None else memory.num_frames)
        return detect_and_remember(conv4, image_size, memory)

    def no_rebuild(*args):
        calls["support_memory"] += 1

    model.frame_fusion.keys_values, model.detect_and_remember = counting_keys_values, counting_passes
    model.support_memory = no_rebuild
    predictor = VideoPredictor(model, config, num_frames=4, sampling="causal", mode="cached")
    results = list(predictor.stream(random_frames(10, 48, 40)))
    assert len(results) == 10 and predictor.stats["backbone_frames"] == 10
    assert calls["keys_values"] == [1] * 10
    assert calls["passes"] == [min(t, 3) for t in range(10)]
    assert calls["support_memory"] == 0
    assert predictor.stats["max_stored"] == 3


def test_spread_memory_reuses_its_joined_memory_while_it_does_not_change():
    model, config = make_model("frame")
    predictor = VideoPredictor(model, config, num_frames=4, sampling="causal", memory="spread", mode="cached")
    list(predictor.stream(random_frames(40, 32, 32)))
    # the reservoir changes at frames 1, 2, 3 and then with probability 3/t: far fewer joins than frames
    assert predictor.stats["support_memories"] < 20, predictor.stats


def test_joined_one_frame_memories_hold_each_frames_rows_in_order():
    from dsfnet.models.detector import SupportMemory

    model, config = make_model("dsfnet")
    conv4 = torch.randn(3, model.frame_fusion.phi.in_channels, 4, 5, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        singles = [model.support_memory(conv4[i : i + 1], (64, 80)) for i in range(3)]
        joined = SupportMemory.join(singles)
        together = model.support_memory(conv4, (64, 80))
    assert joined.num_frames == 3
    assert torch.equal(joined.frames.keys, together.frames.keys)  # frame tokens are projected frame by frame
    assert joined.frames.rows == together.frames.rows
    for stage in range(2):
        counts = [single.instances[stage].rows.total for single in singles]
        rows = joined.instances[stage].rows
        assert [rows.frame(i).stop - rows.frame(i).start for i in range(3)] == counts
        middle = rows.frame(1)
        assert torch.equal(joined.instances[stage].keys[:, middle], singles[1].instances[stage].keys)
        assert torch.equal(joined.instances[stage].boxes[middle], singles[1].instances[stage].boxes)


def test_join_into_a_spare_memory_writes_into_its_storage_and_equals_a_fresh_join():
    from dsfnet.models.detector import SupportMemory

    model, config = make_model("dsfnet")
    conv4 = torch.randn(4, model.frame_fusion.phi.in_channels, 4, 5, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        singles = [model.support_memory(conv4[i : i + 1], (64, 80)) for i in range(4)]
        fresh = SupportMemory.join(singles[:3])
        spare = SupportMemory.join(singles[1:])  # same size: its storage is large enough
        small = SupportMemory.join(singles[:1])  # too small: a new tensor is allocated
        into_spare = SupportMemory.join(singles[:3], into=spare)
        into_small = SupportMemory.join(singles[:3], into=small)
    for joined in (into_spare, into_small):
        assert torch.equal(joined.frames.keys, fresh.frames.keys) and torch.equal(joined.frames.values, fresh.frames.values)
        for stage, reference in zip(joined.instances, fresh.instances):
            assert torch.equal(stage.keys, reference.keys) and torch.equal(stage.boxes, reference.boxes)
            assert stage.rows == reference.rows
    assert into_spare.frames.keys.data_ptr() == spare.frames.keys.data_ptr()
    assert into_small.frames.keys.data_ptr() != small.frames.keys.data_ptr()
    view = into_spare.frame(1)  # one frame's rows as views: what the stream keeps per memory frame
    assert torch.equal(view.frames.keys, singles[1].frames.keys)
    assert torch.equal(view.instances[1].values, singles[1].instances[1].values)
    assert view.frames.keys.data_ptr() > into_spare.frames.keys.data_ptr()


@pytest.mark.parametrize("sampling,memory", [("causal", "recent"), ("causal", "spread"), ("shuffled_window", "recent")])
def test_streamed_memory_lives_in_two_buffers_and_gives_the_same_detections(tmp_path, monkeypatch, sampling, memory):
    """Reusing the spare joined memory changes no detection bit, and once the memory is full every step's join
    writes into one of two storages (nothing allocated per step for the memory)."""
    from dsfnet.models.detector import SupportMemory

    model, config = make_model("dsfnet")
    frames = random_frames(12, 48, 40)
    paths = saved_as_images(frames, tmp_path)

    def run():
        predictor = VideoPredictor(model, config, num_frames=4, sampling=sampling, memory=memory, mode="cached")
        if sampling == "causal":
            return list(predictor.stream(frames))
        return list(predictor.predict(FrameListSource(paths, name="v")))

    join, full = SupportMemory.join.__func__, []

    def recording_join(cls, memories, into=None):
        joined = join(cls, memories, into)
        if joined.num_frames == 3:  # the memory is full: (the spare's storage, where the join wrote)
            full.append((into.frames.keys.untyped_storage().data_ptr() if into is not None else None,
                         joined.frames.keys.untyped_storage().data_ptr()))
        return joined

    monkeypatch.setattr(SupportMemory, "join", classmethod(recording_join))
    reused = run()
    monkeypatch.setattr(SupportMemory, "join", classmethod(lambda cls, memories, into=None: join(cls, memories)))
    for a, b in zip(run(), reused, strict=True):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
        assert np.array_equal(a.labels, b.labels)
    if sampling == "causal" and memory == "recent":  # the memory changes at every step
        assert len(full) == 9 and all(spare == written for spare, written in full[2:]), full
