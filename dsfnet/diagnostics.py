"""What the fusion modules of a trained model attend to, measured on labelled videos.

Instance-level fusion (per stage and head): of the attention mass a proposal of a ground-truth object puts on
the clip's instances, the share that lands on proposals of the *same object in other frames*, against the share
uniform attention would give (the fraction of keys that are such proposals). A ratio well above 1 says the
relation module learned to link an object across frames; near 1 says it did not.

Frame-level fusion: the entropy of each channel token's attention (against log of the token count, uniform
attention), the share of its mass on tokens of its own frame (against 1/n) and on the same channel of any
frame (against 1/d).

Both: how much the fusion changes what it enhances, ``||fused - input|| / ||input||`` over all query features
of the calls measured (root of the summed squares): 0 is a fusion that learned to do nothing (its value
projection stays at its zero initialisation), whatever its attention looks like.

Knocked out (:func:`knock_out`): a fusion's value projection zeroed in a trained model, which then detects as
if that fusion were the identity; the mAP it loses is what the fusion contributes at test time. Averaged frames
(:func:`average_frames`): a baseline's conv4 map moved towards the same-position average of the clip's frames,
with nothing learned; what that gains is what a plain same-position mixture of the frames gives that detector.

The weights are recomputed from each module's own projections on exactly the inputs of its call in the ``exact``
path (captured by forward hooks), so the model's detections are not touched.

    report = attention_report(model, dataset, config, num_frames=5, frames_per_video=4)
    print(format_report(report))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.ops import box_iou
from tqdm import tqdm

from dsfnet.config import Config
from dsfnet.data.images import load_frame, resize_scale, resized_size
from dsfnet.data.records import DatasetRecord, FrameRecord
from dsfnet.data.sampling import support_frames
from dsfnet.models.fusion import FrameFusion, KeyBlock

MATCH_IOU = 0.5  # a proposal belongs to the ground-truth object it overlaps at IoU >= 0.5 (the VID protocol's)


def instance_attention_shares(weights: Tensor, objects: Tensor, frames: Tensor,
                              query_positions: Tensor) -> dict[str, Tensor]:
    """Per-head sums over the query instances that belong to an object.

    Args:
        weights: ``[H, q, m]`` attention of q queries over the m instances of a clip (rows sum to 1).
        objects: ``int64 [m]`` ground-truth object id of each instance, -1 for background.
        frames: ``int64 [m]`` frame of each instance.
        query_positions: ``int64 [q]``, which instance each query is (the queries are among the keys).
    Returns:
        ``same_object`` ``[H]``: summed mass on the query's object in other frames; ``random`` ``[H]``: summed
        fraction of the keys that are such instances (what uniform attention would give); ``other_frames`` /
        ``random_other_frames``: the same for every instance of another frame; ``self``: summed mass on the
        query itself; ``queries``: how many queries (those with an object id >= 0) were summed.
    """
    query_objects, query_frames = objects[query_positions], frames[query_positions]
    matched = query_objects >= 0
    weights = weights[:, matched].double()  # [H, q', m]
    other_frame = query_frames[matched, None] != frames[None, :]  # [q', m]
    same_object = (query_objects[matched, None] == objects[None, :]) & other_frame
    heads, keys = weights.shape[0], weights.shape[-1]
    rows = torch.arange(int(matched.sum()))
    return {
        "same_object": (weights * same_object).sum(dim=(1, 2)),
        "random": (same_object.sum().double() / keys).expand(heads),
        "other_frames": (weights * other_frame).sum(dim=(1, 2)),
        "random_other_frames": (other_frame.sum().double() / keys).expand(heads),
        "self": weights[:, rows, query_positions[matched]].sum(dim=1),
        "queries": torch.tensor(len(rows)),
    }


def frame_attention_stats(weights: Tensor, query_frames: Tensor, num_frames: int) -> dict[str, Tensor]:
    """Sums over the query tokens of a frame-level attention ``[q·d, n·d]`` (token f·d + c: channel c of frame f).

    Args:
        query_frames: ``int64 [q]``, the frame (0..n-1) of each query frame.
    Returns:
        ``entropy`` (nats), ``self_frame`` (mass on the query's own frame), ``same_channel`` (mass on its channel in
        all n frames), each summed over tokens, and ``tokens``.
    """
    rows, tokens = weights.shape
    channels = tokens // num_frames
    weights = weights.double().view(rows, num_frames, channels)
    query_frame = query_frames.repeat_interleave(channels)  # [q·d]
    query_channel = torch.arange(channels, device=weights.device).repeat(len(query_frames))
    entropy = -(weights * weights.clamp_min(1e-300).log()).sum(dim=(1, 2))
    return {
        "entropy": entropy.sum(),
        "self_frame": weights[torch.arange(rows), query_frame].sum(),
        "same_channel": weights[torch.arange(rows), :, query_channel].sum(),
        "tokens": torch.tensor(rows),
    }


@dataclass
class _Capture:
    """Inputs of one clip's fusion calls, recorded by :func:`capture_fusion_inputs`."""

    frame: list[tuple[tuple, dict]] = field(default_factory=list)  # (args, kwargs) of frame fusion's calls
    instance: list[tuple[Tensor, Tensor, Optional[Tensor]]] = field(default_factory=list)  # (feats, boxes, index)
    frame_change: list[Tensor] = field(default_factory=list)  # change_sums of each frame-fusion call
    instance_change: list[Tensor] = field(default_factory=list)  # change_sums of each call kept in ``instance``
    proposals: list[list[Tensor]] = field(default_factory=list)  # boxes per frame given to the RoI head


def change_sums(inputs: Tensor, fused: Tensor) -> Tensor:
    """``float64 [2]``: the summed squares of ``fused - inputs`` (what a fusion added) and of ``inputs``, two
    tensors of one shape (``[q, dim]`` instances or ``[q, d, h, w]`` frames)."""
    inputs, fused = inputs.double(), fused.double()
    return torch.stack([(fused - inputs).pow(2).sum(), inputs.pow(2).sum()])


def relative_change(sums: Tensor) -> float:
    """``||fused - input|| / ||input||`` from summed :func:`change_sums` (0 when nothing was measured)."""
    return math.sqrt(float(sums[0]) / float(sums[1])) if float(sums[1]) > 0 else 0.0


@contextmanager
def capture_fusion_inputs(model) -> Iterator[_Capture]:
    """Record what the fusion modules and the RoI head receive while the block runs; outputs are unchanged.

    Forward hooks on the fusions and the RoI box head record their inputs. Frame fusion's calls are kept whole,
    for :meth:`FrameFusion.attention_weights` to read the same way: in the ``exact`` path it either enhances all
    frames among themselves (with instance fusion) or the key frame against a memory of the other frames' raw
    conv4 (``frame`` variant: the key frame's column block comes last). Instance fusion's calls are kept when
    they read no memory (the ``exact`` path: the clip's instances among themselves). Each kept call's
    :func:`change_sums` (its output against the features it enhanced) are recorded alongside.
    """
    capture = _Capture()

    def instance_call(module, args, kwargs, output):
        feats, boxes, *memory = args
        if (memory[0] if memory else kwargs.get("memory")) is None:
            query_index = kwargs.get("query_index")
            capture.instance.append((feats, boxes, query_index))
            capture.instance_change.append(change_sums(feats if query_index is None else feats[query_index], output))

    def frame_call(module, args, kwargs, output):
        capture.frame.append((args, kwargs))
        capture.frame_change.append(change_sums(module.query_feats(args[0], kwargs.get("query_frames")), output))

    handles = [model.box_head.register_forward_hook(
        lambda module, args, output: capture.proposals.append(list(args[1])))]
    if model.frame_fusion is not None:
        handles.append(model.frame_fusion.register_forward_hook(frame_call, with_kwargs=True))
    for fusion in model.instance_fusions or []:
        handles.append(fusion.register_forward_hook(instance_call, with_kwargs=True))
    try:
        yield capture
    finally:
        for handle in handles:
            handle.remove()


FUSIONS = ("frame", "instance")  #: what :func:`knock_out` can remove


@torch.no_grad()
def knock_out(model, fusion: str) -> None:
    """Zero the value projection of the model's frame-level fusion (``"frame"``: θ, eq. 3) or of every stage of
    its instance-level fusion (``"instance"``: γ, eq. 5), in place.

    The values are the only path from the attention into a fusion's output (``F_c + S·θ(F_c)``,
    ``Q + softmax(z + r)·γ(Q)``), so the knocked-out fusion returns its input exactly and the model detects as
    the same weights without that module would: the parts it shares with the baseline, trained alongside the
    fusion, and the other fusion if it has one.

    Raises:
        ValueError: ``fusion`` is not one of :data:`FUSIONS`, or the model has no such fusion.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if fusion == "frame":
        projections = [model.frame_fusion.theta] if model.frame_fusion is not None else []
    else:
        projections = [stage.gamma for stage in model.instance_fusions or ()]
    if not projections:
        raise ValueError(f"the model has no {fusion}-level fusion to knock out")
    for projection in projections:
        projection.weight.zero_()
        projection.bias.zero_()


class TemporalAverage(FrameFusion):
    """A frame-level fusion without attention, for a model trained without one: each query frame's conv4 map moves
    towards the same-position average of the clip's frames, ``F_c + weight · (mean_f F_f − F_c)`` (``[q, d, h, w]``;
    the mean over the memory's frames, but the excluded one, and the query frames themselves).

    Installed in a trained baseline by :func:`average_frames`, it asks whether a same-channel mixture of the
    conv4 maps of a video's frames carries anything the key frame's own map lacks, with nothing learned (a
    learned fusion could weigh frames and channels; this one cannot).
    """

    def __init__(self, channels: int, weight: float):
        super().__init__(channels)
        self.weight = weight

    def keys_values(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        """The raw maps ``[n, d, h, w]`` as ``[n·d, h·w]`` tokens, for keys and values alike: nothing is projected
        (the inherited ϕ, φ and θ stay unused)."""
        tokens = feats.flatten(0, 1).flatten(1)
        return tokens, tokens

    def _enhance(self, query_feats: Tensor, blocks: Sequence[KeyBlock]) -> Tensor:
        channels, height, width = query_feats.shape[1:]
        total = sum(values.view(-1, channels, height * width).sum(dim=0) for _, values in blocks)  # [d, h·w]
        frames = sum(len(values) for _, values in blocks) // channels
        mean = (total / frames).view(1, channels, height, width)
        return query_feats + self.weight * (mean - query_feats)


@torch.no_grad()
def average_frames(model, weight: float, similarity: bool = False, normalize_tokens: bool = False) -> None:
    """Give a model without frame-level fusion a same-channel mixture of the clip's frames at ``weight`` (0: the
    model as it was, 1: the mixture alone) in place of one; the detector then reads its support frames' conv4
    maps as the frame variant does. The mixture is the same-position average (:class:`TemporalAverage`), or with
    ``similarity`` a softmax over each channel's n maps of eq. 2's logits among that channel's tokens: a
    :class:`FrameFusion` with ``same_channel``, identity ϕ, φ, θ = weight·I and ``subtract_own_value``, so
    ``F + weight·(S·F − F)`` (``normalize_tokens``: pass the checkpoint's ``model.frame_fusion.normalize_tokens``
    for the logits its frame variant would have).

    Raises:
        ValueError: the model has a frame-level fusion of its own, or ``weight`` is outside [0, 1].
    """
    if model.frame_fusion is not None:
        raise ValueError("the model has a frame-level fusion of its own; average the frames of one without")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    channels = model.backbone.conv4_channels
    if similarity:
        fusion = FrameFusion(channels, normalize_tokens=normalize_tokens, identity_projections=True,
                             value_init=weight, subtract_own_value=True, same_channel=True)
    else:
        fusion = TemporalAverage(channels, weight)
    model.frame_fusion = fusion.to(model.pixel_mean.device).eval()


def _clip(frames: list[FrameRecord], config: Config) -> tuple[Tensor, float]:
    """Frames resized as the predictor resizes them: ``[n, 3, h, w]`` in [0, 1], and the scale."""
    first = frames[0]
    scale = resize_scale(first.height, first.width, config.data.min_size, config.data.max_size)
    height, width = resized_size(first.height, first.width, scale)
    images = []
    for frame in frames:
        image = load_frame(frame.image_path)
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        images.append(torch.from_numpy(np.asarray(image, np.uint8).copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(images), scale


def _objects(proposals: Tensor, frame: FrameRecord, scale: float) -> Tensor:
    """Track id of the ground-truth object each proposal ``[p, 4]`` overlaps at IoU >= 0.5 (best one), else -1."""
    if len(frame.boxes) == 0 or len(proposals) == 0:
        return torch.full((len(proposals),), -1, dtype=torch.long)
    iou = box_iou(proposals.float().cpu(), torch.from_numpy(frame.boxes).float() * scale)  # [p, k]
    best, index = iou.max(dim=1)
    return torch.where(best >= MATCH_IOU, torch.from_numpy(frame.track_ids)[index], torch.tensor(-1))


def _instance_stage_sums(model, capture: _Capture, frames: list[FrameRecord], scale: float) -> list[dict]:
    """:func:`instance_attention_shares` of both instance fusions of one clip."""
    proposals = capture.proposals[0]
    objects = torch.cat([_objects(boxes, frame, scale) for boxes, frame in zip(proposals, frames)])
    instance_frames = torch.cat([torch.full((len(boxes),), f) for f, boxes in enumerate(proposals)])
    sums = []
    for fusion, (feats, boxes, query_index), change in zip(model.instance_fusions, capture.instance,
                                                          capture.instance_change):
        positions = torch.arange(len(objects))
        if query_index is not None:
            positions = positions[query_index.cpu()]
        weights = fusion.attention_weights(feats[positions], boxes[positions], feats, boxes).cpu()
        sums.append({**instance_attention_shares(weights, objects, instance_frames, positions), "change": change.cpu()})
    return sums


def _frame_stage_sums(model, capture: _Capture, num_frames: int) -> dict:
    """:func:`frame_attention_stats` of frame fusion's first call on a clip: its queries are the clip's last
    frames in the order of the attention's columns (all of them, or the key frame after its support frames)."""
    args, kwargs = capture.frame[0]
    weights = model.frame_fusion.attention_weights(*args, **kwargs).cpu()
    rows = torch.arange(num_frames - len(args[0]), num_frames)
    return {**frame_attention_stats(weights, rows, num_frames), "change": capture.frame_change[0].cpu()}


@torch.no_grad()
def attention_report(model, dataset: DatasetRecord, config: Config, num_frames: int = 5,
                     frames_per_video: int = 4, max_videos: int = 0, progress: bool = False) -> dict:
    """Attention statistics of ``model`` (eval mode, ``exact`` path) over labelled videos.

    Args:
        dataset: videos with ``boxes`` and ``track_ids`` per frame.
        config: the model's config (resize rule, ``test.seed`` / ``test.sampling`` for the support frames).
        num_frames: n, the test frame plus n-1 support frames (``support_frames``, as at test time).
        frames_per_video: test frames per video, evenly spaced.
        max_videos: the first videos only (0 = all).
    Returns:
        ``{"instance": [per stage {"same_object", "random", "other_frames", "random_other_frames", "self"}: lists
        of H means over object queries, "queries": count, "relative_change": of all queries], "frame":
        {"entropy", "max_entropy", "self_frame", "random_self_frame", "same_channel", "random_same_channel",
        "tokens", "relative_change"} or None, "clips": count}``.
    """
    model.eval()
    videos = dataset.videos[:max_videos] if max_videos > 0 else dataset.videos
    instance_sums: list[dict] = []
    frame_sums: list[dict] = []  # one entry once a clip has been seen
    clips = 0
    for video in tqdm(videos, desc="attention", disable=not progress):
        count = len(video.frames)
        for test in sorted({int(t) for t in np.linspace(0, count - 1, min(frames_per_video, count))}):
            support = support_frames(count, test, num_frames, config.test.sampling, config.test.stride,
                                     config.test.seed)
            frames = [video.frames[i] for i in [test, *support]]
            clip, scale = _clip(frames, config)
            with capture_fusion_inputs(model) as capture:
                model(clip, key=0)
            clips += 1
            if model.instance_fusions is not None:
                _accumulate(instance_sums, _instance_stage_sums(model, capture, frames, scale))
            if model.frame_fusion is not None:
                _accumulate(frame_sums, [_frame_stage_sums(model, capture, len(frames))])
    return {"instance": [_instance_means(stage) for stage in instance_sums],
            "frame": _frame_means(frame_sums[0], model, num_frames) if frame_sums else None, "clips": clips}


def _accumulate(totals: list[dict], new: list[dict]) -> None:
    if not totals:
        totals.extend({key: value.clone() for key, value in stage.items()} for stage in new)
        return
    for total, stage in zip(totals, new):
        for key, value in stage.items():
            total[key] += value


def _instance_means(sums: dict) -> dict:
    queries = int(sums["queries"])
    return {**{key: (value / max(queries, 1)).tolist() for key, value in sums.items()
               if key not in ("queries", "change")},
            "queries": queries, "relative_change": relative_change(sums["change"])}


def _frame_means(sums: dict, model, num_frames: int) -> dict:
    tokens = int(sums["tokens"])
    channels = model.frame_fusion.phi.out_channels  # d, the conv4 channels
    return {"entropy": float(sums["entropy"]) / tokens, "max_entropy": math.log(num_frames * channels),
            "self_frame": float(sums["self_frame"]) / tokens, "random_self_frame": 1 / num_frames,
            "same_channel": float(sums["same_channel"]) / tokens, "random_same_channel": 1 / channels,
            "tokens": tokens, "relative_change": relative_change(sums["change"])}


def format_report(report: dict) -> str:
    """Markdown tables of :func:`attention_report`'s result."""
    lines = []
    for stage, values in enumerate(report["instance"], start=1):
        lines += [f"instance fusion stage {stage} ({values['queries']} object queries): attention share on the same "
                  "object in other frames / at random, share on other frames / at random, on itself; "
                  f"||fused - input|| / ||input|| over all queries: {values['relative_change']:.3f}",
                  "", "| head | same object | random | ratio | other frames | random | self |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for head, (same, rand, other, rand_other, own) in enumerate(zip(
                values["same_object"], values["random"], values["other_frames"], values["random_other_frames"],
                values["self"])):
            ratio = f"{same / rand:.2f}" if rand > 0 else "n/a"
            lines.append(f"| {head} | {same:.3f} | {rand:.3f} | {ratio} | {other:.3f} | {rand_other:.3f} | "
                         f"{own:.3f} |")
        lines.append("")
    frame = report["frame"]
    if frame is not None:
        lines += [f"frame fusion ({frame['tokens']} query tokens): entropy of each token's attention against uniform "
                  "attention's, its share on its own frame and on its own channel against random; "
                  f"||fused - input|| / ||input||: {frame['relative_change']:.3f}", "",
                  "| entropy (nats) | uniform | own frame | random | same channel | random |",
                  "|---:|---:|---:|---:|---:|---:|",
                  f"| {frame['entropy']:.2f} | {frame['max_entropy']:.2f} | {frame['self_frame']:.3f} | "
                  f"{frame['random_self_frame']:.3f} | {frame['same_channel']:.3f} | "
                  f"{frame['random_same_channel']:.4f} |"]
    return "\n".join(lines)


def _summary_cells(report: dict) -> list[Optional[float]]:
    """The summary's numbers of one report: per instance stage (two) the same-object share over random (mean over
    heads) and the relative change, then the frame fusion's entropy, own-frame share and relative change; ``None``
    where the model has no such fusion."""
    cells: list[Optional[float]] = []
    stages = report["instance"]
    for stage in range(2):
        if stage < len(stages) and stages[stage]["random"][0] > 0:
            values = stages[stage]
            cells += [float(np.mean(values["same_object"])) / values["random"][0], values["relative_change"]]
        else:
            cells += [None, None]
    frame = report["frame"]
    cells += [None] * 3 if frame is None else [frame["entropy"], frame["self_frame"], frame["relative_change"]]
    return cells


def format_summary(reports: dict[str, dict]) -> str:
    """A markdown table comparing checkpoints: one row per report of :func:`attention_report` (keyed by name, each
    with its ``"variant"``), then a mean ± standard deviation row per variant that has more than one."""
    header = ("| checkpoint | variant | inst. 1 same object / random | inst. 1 change | inst. 2 same object / random | "
              "inst. 2 change | frame entropy (nats) | frame own-frame share | frame change |")
    lines = [header, "|---|---|" + "---:|" * 7]

    def cell(values: list[Optional[float]]) -> str:
        present = [value for value in values if value is not None]
        if not present:
            return "–"
        return f"{present[0]:.3f}" if len(values) == 1 else f"{np.mean(present):.3f} ± {np.std(present, ddof=1):.3f}"

    by_variant: dict[str, list[list[Optional[float]]]] = {}
    for name, report in reports.items():
        cells = _summary_cells(report)
        by_variant.setdefault(report["variant"], []).append(cells)
        lines.append(f"| {name} | {report['variant']} | " + " | ".join(cell([value]) for value in cells) + " |")
    for variant, rows in by_variant.items():
        if len(rows) > 1:
            lines.append(f"| mean ± sd ({len(rows)}) | {variant} | "
                         + " | ".join(cell(list(column)) for column in zip(*rows)) + " |")
    return "\n".join(lines)
