"""Typed experiment configuration: dataclasses loaded from YAML, with ``key=value`` overrides.

A YAML file may name another one with ``base: other.yaml`` (relative to its own folder); its keys are merged
over the base's. Unknown or misspelled keys raise :class:`ConfigError` naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from dsfnet.data.classes import VID_CLASS_NAMES
from dsfnet.data.json_fields import INT64_MAX, INT64_MIN, shown
from dsfnet.errors import ConfigError
from dsfnet.registry import BACKBONES, DATASET_READERS

VARIANTS = ("baseline", "frame", "instance", "dsfnet")
#: model.instance_fusion.logits: eq. 6's scaled dot product, or a cosine with a learned scale
INSTANCE_LOGITS = ("dot", "cosine")


@dataclass
class BackboneConfig:
    # a name in dsfnet.registry.BACKBONES: resnet50 | resnet101 | resnext101_32x4d | resnet_tiny |
    # timm:<model> (docs/BACKBONES.md)
    name: str = "resnet101"
    # None | path to an ImageNet state dict | "torchvision" (ResNets) | "timm" (timm's download) |
    # "efficientnet_lite0" (the `light` extra's checkpoint, for timm:tf_efficientnet_lite0)
    weights: Optional[str] = None
    norm: str = "frozen_bn"  # frozen_bn | group_norm | batch_norm
    freeze_stem_and_conv2: bool = True  # freeze stem + layer1 (use with ImageNet weights)
    tiny_width: int = 16  # channels of the first stage of resnet_tiny


@dataclass
class RPNConfig:
    anchor_sizes: tuple[int, ...] = (64, 128, 256, 512)  # anchor sides in input pixels (one RPN level at stride 16)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # anchor height / width ratios
    pre_nms_top_n_train: int = 6000  # proposals kept per frame before the RPN's NMS, training
    pre_nms_top_n_test: int = 6000  # proposals kept per frame before the RPN's NMS, inference
    post_nms_top_n_train: int = 300  # proposals per frame after the RPN's NMS, training (the paper's 300)
    post_nms_top_n_test: int = 300  # proposals per frame after the RPN's NMS, inference (the paper's 300)
    nms_thresh: float = 0.7  # IoU threshold of the RPN's NMS
    fg_iou_thresh: float = 0.7  # anchors with IoU >= this with a ground-truth box are RPN positives
    bg_iou_thresh: float = 0.3  # anchors with IoU < this with every ground-truth box are RPN negatives
    batch_size_per_image: int = 256  # anchors sampled per key frame for the RPN losses
    positive_fraction: float = 0.5  # largest share of positives among the sampled anchors


@dataclass
class RoIHeadConfig:
    reduced_channels: int = 256  # 1x1 conv on conv5 before RoIAlign
    pool_size: int = 7  # RoIAlign output size (pool_size x pool_size)
    sampling_ratio: int = 2  # RoIAlign sampling points per bin side
    representation_size: int = 1024  # fc6 / fc7 width
    batch_size_per_image: int = 512  # RoIs sampled per key frame for the Fast R-CNN losses
    positive_fraction: float = 0.25  # largest share of foreground among the sampled RoIs
    fg_iou_thresh: float = 0.5  # RoIs with IoU >= this with a ground-truth box are foreground
    bg_iou_thresh: float = 0.5  # RoIs with IoU < this with every ground-truth box are background
    # box coder weights (x, y, w, h) of the RoI head's regression
    bbox_reg_weights: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)
    score_thresh: float = 0.001  # detections scoring below this are dropped before NMS
    nms_thresh: float = 0.5  # IoU threshold of the per-class NMS of the detections
    detections_per_img: int = 300  # most detections kept per frame


@dataclass
class FrameFusionConfig:
    scale_by_sqrt_hw: bool = True  # divide logits by sqrt(h*w) (DESIGN 2.1)
    chunk_size: int = 0  # queries per chunk at inference (0 = all at once)
    normalize_tokens: bool = False  # phi / varphi tokens at unit RMS before the dot product (not in the paper)
    # phi / varphi start as the identity (1x1 convs with eye weights, zero bias) instead of PyTorch's random init,
    # so that each channel first attends to the same channel of every frame (the paper states no initialisation)
    identity_projections: bool = False
    # theta starts as this multiple of the identity instead of zero (the design's 0 makes a fresh model equal the
    # baseline; > 0 starts it as a mixture of the frames, which the light ablation needed to probe; not in the paper)
    value_init: float = 0.0
    # eq. 1 less each query token's own value, F + S theta(F) - theta(F): the fusion moves a map towards the frames'
    # mixture instead of adding the mixture to it (a probe of the additive form, docs/results.md; not in the paper)
    subtract_own_value: bool = False
    # each channel token's softmax over the same channel of the n frames only, not eq. 2's all n*d channel tokens:
    # the attention weighs frames, never channels (a probe of eq. 2's cross-channel share, docs/results.md; not in
    # the paper)
    same_channel: bool = False


@dataclass
class InstanceFusionConfig:
    num_heads: int = 16  # attention heads of each instance-level fusion (divides key_dim and roi.representation_size)
    key_dim: int = 1024  # total width of the xi / zeta projections (split across heads)
    geometry: bool = True  # add the geometric term r (eq. 7)
    embed_freqs: int = 8  # wave lengths of the sinusoidal embedding (16 dims per scalar at 8)
    eps: float = 1e-3  # inside log|w_k/h_k - w_l/h_l| + eps
    support_proposals: int = 300  # proposals per support frame used as keys (training and inference)
    chunk_size: int = 64  # queries attended at once (bounds memory: heads x chunk x all instances); 0 = all
    # The sharpness of the attention (not in the paper; docs/design.md): eq. 6's dot product of raw RoI
    # features is unbounded, and their scale grows during training.
    logits: str = "dot"  # dot: <xi(Q_k), zeta(Q_l)> / sqrt(d_k) (eq. 6) | cosine: their cosine x a learned scale
    layer_norm: bool = False  # LayerNorm of the RoI features before xi / zeta (the values, gamma, see raw features)
    init_std: float = 0.0  # > 0: xi / zeta weights drawn from N(0, init_std) (Relation Networks); 0: PyTorch default


@dataclass
class ModelConfig:
    variant: str = "dsfnet"  # baseline | frame | instance | dsfnet
    num_classes: int = 30  # foreground classes
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi: RoIHeadConfig = field(default_factory=RoIHeadConfig)
    frame_fusion: FrameFusionConfig = field(default_factory=FrameFusionConfig)
    instance_fusion: InstanceFusionConfig = field(default_factory=InstanceFusionConfig)
    # per-channel mean subtracted from frames in [0, 1] (the model normalises)
    pixel_mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, ...] = (0.229, 0.224, 0.225)  # per-channel standard deviation frames are divided by

    @property
    def uses_frame_fusion(self) -> bool:
        return self.variant in ("frame", "dsfnet")

    @property
    def uses_instance_fusion(self) -> bool:
        return self.variant in ("instance", "dsfnet")


@dataclass
class AugmentConfig:
    """SSD-style augmentation of training clips, as SELSA's recipe (``dsfnet.data.augment``); all off by default."""

    photometric: bool = False  # brightness / contrast / saturation / hue, each with probability 0.5
    expand: float = 1.0  # largest canvas ratio of the random expand (probability 0.5); 1 = off
    crop: bool = False  # SSD's min-IoU random crop


@dataclass
class DataConfig:
    # a name in dsfnet.registry.DATASET_READERS: vid (ImageNet VID layout) | cocovid (mmtracking JSON)
    format: str = "vid"
    # vid: the ILSVRC2015 folder (None = data/ILSVRC2015); cocovid: the folder file_name entries are relative to
    # (None = each JSON file's own folder, as `dsfnet convert` writes them)
    root: Optional[str] = None
    # vid: ImageSets files of the training set (DET images are repeated into clips)
    train_splits: tuple[str, ...] = ("VID_train_15frames", "DET_train_30classes")
    val_split: str = "VID_val_videos"  # vid: ImageSets file of the validation split
    train_json: Optional[str] = None  # cocovid: annotation file of the training set
    val_json: Optional[str] = None  # cocovid: annotation file of the validation set
    # None = the 30 VID classes (vid); cocovid: matched by name to the JSON's categories (any order), and
    # model.num_classes follows from it unless given
    class_names: Optional[tuple[str, ...]] = None
    num_support: int = 2  # support frames per training clip
    min_size: int = 600  # shorter side after resize
    max_size: int = 1000  # cap on the longer side
    flip_prob: float = 0.5  # probability of a horizontal flip of a training clip (one draw per clip)
    num_workers: int = 4  # data-loader worker processes (results do not depend on it)
    skip_bad_samples: bool = False  # log and skip unreadable samples instead of raising
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # one draw per clip, before resize / flip


@dataclass
class TrainConfig:
    iterations: int = 247_000  # SGD steps (the paper's 247k)
    # total batch 8 in PyTorch terms = the paper's 2.5e-4 with MXNet's summed gradients (docs/training.md)
    lr: float = 0.002
    lr_steps: tuple[int, ...] = (109_000, 219_000)  # iterations where the learning rate is multiplied by lr_gamma
    lr_gamma: float = 0.1  # learning-rate factor at each of lr_steps
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # SGD weight decay
    frame_fusion_lr_mult: float = 1.0  # learning-rate multiplier of frame-level fusion (1 = the paper's single lr)
    instance_fusion_lr_mult: float = 1.0  # learning-rate multiplier of instance-level fusion
    warmup_iterations: int = 0  # linear warm-up iterations from warmup_factor x lr (vid_* configs: 500)
    warmup_factor: float = 1.0 / 3  # learning-rate factor at the first warm-up iteration
    clips_per_step: int = 1  # clips per process per forward pass
    accumulation_steps: int = 1  # forward/backward passes per optimiser step
    clip_grad_norm: float = 0.0  # 0 = off
    # 0 = off; else final.pth (and periodic evaluation) hold an exponential moving average of the weights
    # with this decay, updated every step (dsfnet.engine.weight_average)
    ema_decay: float = 0.0
    amp: bool = True  # bf16 autocast on GPU; ignored on CPU
    # seed of weights, data order and sampling (every random choice of clip i comes from (seed, epoch, i))
    seed: int = 0
    deterministic: bool = False  # deterministic kernels (bit-identical resume on a CPU)
    # A checkpoint whose model weights start this run (not its optimiser or iteration): e.g. a fused variant
    # fine-tuned from a trained baseline; modules the checkpoint lacks (the fusions) keep their fresh init.
    init_from: Optional[str] = None
    checkpoint_interval: int = 5000  # iterations between last.pth writes
    log_interval: int = 20  # iterations between metrics.jsonl lines
    eval_interval: int = 0  # 0 = no periodic evaluation
    eval_max_videos: int = 0  # 0 = the whole validation split


#: test.sampling: offline (the whole video first: shuffled, stride, shuffled_window) or online (causal)
TEST_SAMPLINGS = ("shuffled", "stride", "causal", "shuffled_window")
#: test.memory: which past frames causal sampling keeps as support
TEST_MEMORIES = ("recent", "spread")


@dataclass
class TestConfig:
    num_frames: int = 21  # n: test frame + n-1 support frames
    sampling: str = "shuffled"  # shuffled | stride | causal | shuffled_window
    memory: str = "recent"  # causal support memory: recent (the n-1 latest frames) | spread (reservoir of the past)
    stride: int = 1  # stride sampling: support frames are the test frame's neighbours at this step
    mode: str = "cached"  # cached | exact
    seed: int = 0  # seed of the shuffled order and of the spread reservoir
    precision: str = "fp32"  # fp32 | bf16 (bf16 autocast: GPUs, and CPUs with AMX / AVX512-BF16)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls: type, values: dict, prefix: str) -> Any:
    if not isinstance(values, dict):
        where = prefix.rstrip(".") or "<root>"
        raise ConfigError(f"config key '{where}' must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key '{dotted}' (valid keys here: {', '.join(sorted(names))})")
        kwargs[key] = _convert(hints[key], value, dotted)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, dotted: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, dotted + ".")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, dotted)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{dotted}' must be a list, got {shown(value)}")
        return tuple(_convert(args[0], item, dotted) for item in value)
    if hint is float:
        return _float(value, dotted)
    if hint in (int, str, bool) and type(value) is not hint:
        raise ConfigError(f"config key '{dotted}' must be {hint.__name__}, got {shown(value)}")
    if hint is int and not INT64_MIN <= value <= INT64_MAX:  # seeds, sizes and counts end up in int64
        raise ConfigError(f"config key '{dotted}' must be int (64-bit), got {shown(value)}")
    return value


def _float(value: Any, dotted: str) -> float:
    """A finite number, or a string spelling one: YAML 1.1 (PyYAML) reads ``1e-3`` (no dot) as a string.
    ``.nan`` / ``.inf`` are refused: a run folder's config.yaml would hold them as null."""
    number = math.nan
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int past 1e308
            pass
    if not math.isfinite(number):
        raise ConfigError(f"config key '{dotted}' must be float (finite), got {shown(value)}")
    return number


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping of a YAML document gives the same key twice (``line`` and ``first_line`` are 1-based)."""

    def __init__(self, key: Any, line: int, first_line: int):
        super().__init__(problem=f"key {key!r} is given twice (line {first_line} and line {line})")
        self.key, self.line, self.first_line = key, line, first_line


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that gives a key twice (the safe loader keeps the last value
    silently: ``num_frames: 3`` then ``num_frames: 7`` would read as 7)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` merges keys that the mapping may override, as YAML intends
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise DuplicateKey(key, line, first_line[key])
                first_line[key] = line
            except TypeError:
                continue  # an unhashable key: the safe loader's own error names it
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """``text`` parsed as YAML with :class:`UniqueKeyLoader` (plain values only, like ``yaml.safe_load``).

    Raises:
        DuplicateKey: a mapping gives a key twice.
        yaml.YAMLError: ``text`` is not valid YAML.
    """
    return yaml.load(text, Loader=UniqueKeyLoader)


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config inheritance cycle through {path}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not a text file (byte {error.start} is not UTF-8)") from None
    except DuplicateKey as error:
        raise ConfigError(f"config file {path} line {error.line}: key {error.key!r} is given twice (first on "
                          f"line {error.first_line}); keep one") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {_one_line(error)}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    _check_sections(values, Config, "", path)
    base = values.pop("base", None)
    if base is None:
        return values
    if not isinstance(base, str) or not (path.parent / base).is_file():
        where = f" ({path.parent / base} does not exist)" if isinstance(base, str) else ""
        raise ConfigError(f"config file {path}: 'base' must name a config file, got {shown(base)}{where}")
    return _deep_merge(_read_yaml(path.parent / base, seen + (path,)), values)


def _check_sections(values: dict, cls: type, prefix: str, path: Path) -> None:
    """``ConfigError`` naming ``path`` and the key if a section of ``cls`` (``model``, ``model.backbone``, ...) holds
    something else than a mapping in this file (other keys and values are checked when the config is built)."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if not dataclasses.is_dataclass(hints.get(key)):
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"config file {path}: key '{prefix}{key}' must be a mapping (of keys such as "
                              f"{', '.join(f.name for f in dataclasses.fields(hints[key])[:3])}), got "
                              f"{'nothing' if value is None else type(value).__name__}")
        _check_sections(value, hints[key], f"{prefix}{key}.", path)


def parse_overrides(overrides: list[str]) -> dict:
    """Turn ``["train.lr=0.01", "model.variant=frame"]`` into a nested dict (values parsed as YAML)."""
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. train.lr=0.001)")
        key, raw = item.split("=", 1)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = load_yaml(raw)
        except DuplicateKey as error:
            raise ConfigError(f"override '{item}': key {error.key!r} is given twice") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"override '{item}': the value is not valid YAML ({_one_line(error)})") from None
    return nested


def validate(config: Config) -> Config:
    """Check values that types alone cannot; raises :class:`ConfigError`."""
    checks = [
        (config.model.variant in VARIANTS, f"model.variant must be one of {VARIANTS}, got '{config.model.variant}'"),
        (config.model.num_classes >= 1, "model.num_classes must be >= 1"),
        (config.model.backbone.norm in ("frozen_bn", "group_norm", "batch_norm"),
         f"model.backbone.norm must be frozen_bn, group_norm or batch_norm, got '{config.model.backbone.norm}'"),
        (config.model.instance_fusion.key_dim % config.model.instance_fusion.num_heads == 0,
         "model.instance_fusion.key_dim must be divisible by model.instance_fusion.num_heads"),
        (config.model.roi.representation_size % config.model.instance_fusion.num_heads == 0,
         "model.roi.representation_size must be divisible by model.instance_fusion.num_heads"),
        (config.model.instance_fusion.logits in INSTANCE_LOGITS,
         f"model.instance_fusion.logits must be one of {', '.join(INSTANCE_LOGITS)}, "
         f"got {config.model.instance_fusion.logits!r}"),
        (config.data.format in DATASET_READERS,
         f"data.format must be one of {', '.join(DATASET_READERS.names())}, got '{config.data.format}'"),
        (config.model.backbone.name in BACKBONES,
         f"model.backbone.name must be one of {', '.join(BACKBONES.names())}, got '{config.model.backbone.name}'"),
        (config.train.accumulation_steps >= 1, "train.accumulation_steps must be >= 1"),
        (config.data.class_names is None or len(config.data.class_names) == config.model.num_classes,
         f"data.class_names has {len(config.data.class_names or ())} entries but model.num_classes is "
         f"{config.model.num_classes} (leave model.num_classes out: it follows from data.class_names)"),
        (config.data.class_names is None or len(set(config.data.class_names)) == len(config.data.class_names),
         f"data.class_names lists a class twice: {list(config.data.class_names or ())}"),
    ]
    _raise_first(checks)
    check_test(config.test)
    _check_ranges(config)
    return config


def check_test(test: TestConfig) -> TestConfig:
    """Check the inference settings (also after command-line overrides); raises :class:`ConfigError`."""
    _raise_first([
        (test.sampling in TEST_SAMPLINGS,
         f"test.sampling must be one of {', '.join(TEST_SAMPLINGS)}, got {test.sampling!r}"),
        (test.memory in TEST_MEMORIES, f"test.memory must be one of {', '.join(TEST_MEMORIES)}, got {test.memory!r}"),
        (test.precision in ("fp32", "bf16"), f"test.precision must be fp32 or bf16, got {test.precision!r}"),
        (test.mode in ("cached", "exact"), f"test.mode must be cached or exact, got {test.mode!r}"),
        (test.num_frames >= 1, f"test.num_frames must be >= 1, got {test.num_frames}"),
        (test.stride >= 1, f"test.stride must be >= 1, got {test.stride}"),
        (test.seed >= 0, f"test.seed must be >= 0, got {test.seed}"),  # also where no sampling draws from it
    ])
    return test


def _raise_first(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


# (dotted key, test, what the test means); written so that NaN fails every test
RANGES = (
    ("train.iterations", lambda v: v >= 1, ">= 1"),
    ("train.lr", lambda v: 0 < v < math.inf, "a finite number > 0"),
    ("train.lr_gamma", lambda v: 0 < v < math.inf, "a finite number > 0"),
    ("train.momentum", lambda v: 0 <= v < math.inf, ">= 0"),
    ("train.weight_decay", lambda v: 0 <= v < math.inf, ">= 0"),
    ("train.frame_fusion_lr_mult", lambda v: 0 <= v < math.inf, ">= 0"),
    ("train.instance_fusion_lr_mult", lambda v: 0 <= v < math.inf, ">= 0"),
    ("train.warmup_iterations", lambda v: v >= 0, ">= 0"),
    ("train.warmup_factor", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("train.clips_per_step", lambda v: v >= 1, ">= 1"),
    ("train.clip_grad_norm", lambda v: 0 <= v < math.inf, ">= 0 (0 = off)"),
    ("train.ema_decay", lambda v: 0 <= v < 1, "in [0, 1) (0 = off)"),
    ("train.checkpoint_interval", lambda v: v >= 1, ">= 1"),
    ("train.log_interval", lambda v: v >= 1, ">= 1"),
    ("train.eval_interval", lambda v: v >= 0, ">= 0 (0 = off)"),
    ("train.eval_max_videos", lambda v: v >= 0, ">= 0 (0 = all)"),
    ("train.lr_steps", lambda v: all(step >= 1 for step in v), "iterations >= 1"),
    ("data.min_size", lambda v: v >= 1, ">= 1"),
    ("data.max_size", lambda v: v >= 1, ">= 1"),
    ("data.num_support", lambda v: v >= 0, ">= 0"),
    ("data.flip_prob", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("data.augment.expand", lambda v: 1 <= v < math.inf, "a finite number >= 1 (1 = off)"),
    ("model.roi.score_thresh", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("model.instance_fusion.init_std", lambda v: 0 <= v < math.inf, ">= 0 (0 = PyTorch's default)"),
)


def _check_ranges(config: Config) -> None:
    for dotted, ok, meaning in RANGES:
        section, *rest = dotted.split(".")
        value = getattr(config, section)
        for name in rest:
            value = getattr(value, name)
        if not ok(value):
            raise ConfigError(f"config key '{dotted}' must be {meaning}, got {value!r}")


def config_from_dict(values: dict) -> Config:
    config = _build(Config, values, "")
    if config.data.class_names is not None and "num_classes" not in values.get("model", {}):
        config.model.num_classes = len(config.data.class_names)  # one list to keep, not two in step
    return validate(config)


def load_config(path: str | Path, overrides: Optional[list[str]] = None) -> Config:
    """Load a YAML config (following ``base:``), apply ``key=value`` overrides and validate.

    Raises:
        ConfigError: one line naming the key, and the file when the file's own values are at fault.
    """
    file_values = _read_yaml(Path(path))
    values = _deep_merge(file_values, parse_overrides(overrides)) if overrides else file_values
    try:
        return config_from_dict(values)
    except ConfigError as error:
        if overrides and _is_valid(file_values):
            raise  # an override's key or value: the message names the key the user typed
        raise ConfigError(f"config file {path}: {error}") from None


def with_overrides(config: Config, overrides: list[str]) -> Config:
    """A new :class:`Config`: ``config`` with ``key=value`` overrides applied, validated again.

    Raises:
        ConfigError: one line naming the override's key.
    """
    return config_from_dict(_deep_merge(config.to_dict(), parse_overrides(overrides)))


def _is_valid(values: dict) -> bool:
    try:
        config_from_dict(values)
    except ConfigError:
        return False
    return True


def class_names(config: Config) -> tuple[str, ...]:
    """The dataset's class names (label ``i`` is ``names[i - 1]``)."""
    if config.data.class_names is not None:
        return tuple(config.data.class_names)
    return VID_CLASS_NAMES[: config.model.num_classes]
