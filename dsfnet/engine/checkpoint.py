"""Checkpoints: atomic save, checked load, architecture compatibility, model loading and weight export.

A checkpoint is a dict saved with ``torch.save``::

    format_version   1
    dsfnet_version   package version that wrote it
    config           Config.to_dict() of the run (the model is rebuilt from it)
    model            model state dict (unwrapped from DDP)
    # training checkpoints only:
    optimizer, scheduler, iteration (optimiser steps done), rng (bf16 autocast needs no GradScaler state)

Everything in it loads with ``torch.load(weights_only=True)`` (no pickled code), so a checkpoint from an
untrusted source cannot run code.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from dsfnet.atomic import atomic_open
from dsfnet.config import Config, ConfigError, class_names, config_from_dict
from dsfnet.engine.legacy import upgrade_checkpoint
from dsfnet.errors import InputError, InputNotFound
from dsfnet.models.build import build_model
from dsfnet.torch_files import load_torch_file
from dsfnet.version import __version__

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1

# model-config fields that change the parameter set or its shapes: a checkpoint whose values differ cannot be
# loaded into (or resumed with) the other architecture
ARCHITECTURE_FIELDS = (
    "variant",
    "num_classes",
    "backbone.name",
    "backbone.tiny_width",
    "backbone.norm",
    "rpn.anchor_sizes",
    "rpn.aspect_ratios",
    "roi.reduced_channels",
    "roi.pool_size",
    "roi.representation_size",
    "instance_fusion.num_heads",
    "instance_fusion.key_dim",
    "instance_fusion.geometry",
    "instance_fusion.embed_freqs",
)


# ---------------------------------------------------------------------------------------------- save / load
def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Save ``state`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``.

    If anything fails (disk full, exception while serialising, process killed) the previous file at ``path``
    is left untouched and the temp file is removed (a killed process may leave a ``.*.tmp`` sibling).
    """
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        writer = _RecordingWriter(handle)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is None:
                raise
            raise writer.error from None  # the real cause: a full disk (WriteError naming path), Ctrl-C, ...
    _fsync_dir(path.parent)
    return path


class _RecordingWriter:
    """Passes ``torch.save``'s writes to ``handle`` and keeps the exception a write raised: torch.save reports any
    exception of its write callback (``OSError`` of a full disk, ``KeyboardInterrupt``) as
    "[enforce fail at inline_container.cc] unexpected pos", which names neither."""

    def __init__(self, handle):
        self.handle = handle
        self.error: Optional[BaseException] = None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except BaseException as error:
            self.error = error
            raise

    def __getattr__(self, name: str):  # flush, seek, tell, ...: the real file's
        return getattr(self.handle, name)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` / :func:`export_weights`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable torch checkpoint, is not a DSFNet checkpoint, or has an
            unsupported ``format_version``.

    Checkpoints of retired backbone modules come back under today's names (:mod:`dsfnet.engine.legacy`).
    """
    path = Path(path)
    if path.is_dir():
        inside = next((str(path / name) for name in ("final.pth", "last.pth") if (path / name).is_file()), None)
        raise InputError(f"checkpoint {path} is a folder, not a checkpoint file"
                         + (f" (did you mean {inside}?)" if inside else ""))
    if not path.is_file():
        raise InputNotFound(f"checkpoint not found: {path}")
    checkpoint = load_torch_file(path, "checkpoint", map_location)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "config" not in checkpoint:
        raise InputError(f"checkpoint {path} is not a DSFNet checkpoint (no 'model' / 'config' entries)")
    check_format_version(checkpoint, f"checkpoint {path}")
    upgrade_checkpoint(checkpoint, f"checkpoint {path}")
    return checkpoint


def check_format_version(checkpoint: dict, name: str = "checkpoint") -> None:
    """``ValueError`` naming ``name`` unless the checkpoint has the :data:`FORMAT_VERSION` this dsfnet reads."""
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(f"{name} has format_version {version!r}; this dsfnet ({__version__}) reads "
                         f"format_version {FORMAT_VERSION}")


# ---------------------------------------------------------------------------------------------- compatibility
def _get(values: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return tuple(values) if isinstance(values, list) else values


def architecture_differences(model_a: dict, model_b: dict) -> list[str]:
    """``["model.variant: 'dsfnet' != 'baseline'", ...]`` for the :data:`ARCHITECTURE_FIELDS` that differ."""
    differences = []
    for name in ARCHITECTURE_FIELDS:
        a, b = _get(model_a, name), _get(model_b, name)
        if name == "backbone.tiny_width" and _get(model_a, "backbone.name") != "resnet_tiny":
            continue  # only resnet_tiny reads the width
        if name.startswith("instance_fusion.") and _get(model_a, "variant") not in ("instance", "dsfnet"):
            continue  # no instance fusion modules in this variant
        if a != b:
            differences.append(f"model.{name}: {a!r} != {b!r}")
    return differences


def check_compatible(checkpoint: dict, config: Config) -> None:
    """Raise ``ValueError`` if ``checkpoint`` cannot be loaded into the model that ``config`` builds.

    The message names the format version or every differing architecture field (checkpoint value first).
    """
    check_format_version(checkpoint)
    saved = checkpoint.get("config", {}).get("model", {})
    differences = architecture_differences(saved, config.to_dict()["model"])
    if differences:
        raise InputError("checkpoint was trained with another architecture (checkpoint != config): "
                         + "; ".join(differences))


# ---------------------------------------------------------------------------------------------- model loading
def config_from_checkpoint(checkpoint: dict) -> Config:
    """The run's :class:`Config`, with ``backbone.weights`` cleared (the checkpoint holds all weights)."""
    try:
        config = config_from_dict(checkpoint["config"])
    except ConfigError as error:
        raise InputError(f"checkpoint config is not valid for this dsfnet version: {error}") from None
    config.model.backbone.weights = None
    return config


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Build the model from the checkpoint's own config and load its weights.

    Returns:
        ``(model, config)``: the model in eval mode on ``device`` (fp32 even for an fp16 export), and its
        :class:`Config`.
    """
    checkpoint = load_checkpoint(path)
    config = config_from_checkpoint(checkpoint)
    model = build_model(config.model)
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise InputError(f"checkpoint {path} does not match its own config's architecture: "
                         f"{' '.join(line.strip() for line in first[:3])}") from None
    return model.to(device).eval(), config


#: top-level modules that a fused variant adds to the baseline's (their value projections start at zero)
FUSION_MODULES = ("frame_fusion", "instance_fusions")


#: ``train.init_from: bundled:NAME``: the checkpoints shipped in ``dsfnet/assets`` (trained on ``dsfnet synth``
#: data, the 30 VID classes): ``light`` (EfficientNet-Lite0 DSFNet, the start of ``configs/own_videos_light.yaml``)
BUNDLED_CHECKPOINTS = {"light": "synth_light_dsfnet.pt", "light_baseline": "synth_light_baseline.pt",
                       "tiny": "synth_dsfnet.pt", "tiny_baseline": "synth_baseline.pt"}
#: the parameters whose rows are classes (background first): re-initialised when the class list changes
CLASS_LAYERS = ("box_head.cls_score", "box_head.bbox_pred")


def checkpoint_path(spec: str | os.PathLike) -> Path:
    """The file ``spec`` names: a path, or ``bundled:NAME`` (:data:`BUNDLED_CHECKPOINTS`)."""
    spec = str(spec)
    if not spec.startswith("bundled:"):
        return Path(spec)
    name = spec.removeprefix("bundled:")
    if name not in BUNDLED_CHECKPOINTS:
        raise InputError(f"train.init_from: unknown bundled checkpoint {name!r} (known: "
                         f"{', '.join('bundled:' + known for known in BUNDLED_CHECKPOINTS)})")
    return Path(__file__).resolve().parents[1] / "assets" / BUNDLED_CHECKPOINTS[name]


def initialise_from(model: torch.nn.Module, path: str | os.PathLike,
                    classes: Optional[Sequence[str]] = None) -> list[str]:
    """Load a checkpoint's model weights into ``model`` to start a run from them (``train.init_from``).

    Only fusion modules may be absent from the checkpoint (a fused variant started from a trained baseline: its
    zero-initialised value projections keep the baseline's function at step 0); fusion weights the model lacks
    are ignored. When ``classes`` (the run's class names) differ from the checkpoint's, the classifier and box
    regressor (:data:`CLASS_LAYERS`) keep their fresh initialisation except the background row and the rows of
    classes both lists name (matched by name). Every other parameter must be present with the same shape. One
    log line says what was loaded, re-initialised and new.

    Args:
        path: a checkpoint file or ``bundled:NAME`` (:func:`checkpoint_path`).
    Returns:
        The names of ``model``'s parameters that kept their fresh initialisation (fusions absent from the
        checkpoint, class layers of another class list).
    Raises:
        ValueError: naming the checkpoint and the first mismatching key.
    """
    path = checkpoint_path(path)
    checkpoint = load_checkpoint(path)
    state, own = dict(checkpoint["model"]), model.state_dict()
    reinitialised = _match_classes(state, own, _checkpoint_classes(checkpoint), classes)
    fresh = [name for name in own if name not in state]
    for name in fresh:
        if name.split(".")[0] not in FUSION_MODULES:
            raise InputError(f"train.init_from: checkpoint {path} has no weights for {name}")
    for name, value in state.items():
        if name in own and own[name].shape != value.shape:
            raise InputError(f"train.init_from: checkpoint {path} has {name} of shape {tuple(value.shape)}, "
                             f"the model {tuple(own[name].shape)}")
        if name not in own and name.split(".")[0] not in FUSION_MODULES:
            raise InputError(f"train.init_from: checkpoint {path} has {name}, which the model does not have")
    model.load_state_dict({name: value.float() if value.is_floating_point() else value
                           for name, value in state.items() if name in own}, strict=False)
    new = sorted({name.split(".")[0] for name in fresh})
    logger.info("init_from %s: loaded %d of %d tensors; re-initialised: %s; new: %s", path,
                len(own) - len(fresh), len(own), reinitialised or "nothing", ", ".join(new) or "nothing")
    return fresh + [name for name in own if name.rsplit(".", 1)[0] in CLASS_LAYERS and reinitialised]


def _checkpoint_classes(checkpoint: dict) -> tuple[str, ...]:
    return class_names(config_from_checkpoint(checkpoint))


def _match_classes(state: dict, own: dict, old: Sequence[str], new: Optional[Sequence[str]]) -> str:
    """Give ``state``'s class layers ``new``'s class rows (shared names copied, the others fresh from ``own``);
    returns what was re-initialised, in words ("" when the class lists are equal)."""
    if new is None or tuple(new) == tuple(old):
        return ""
    rows = [0] + [old.index(name) + 1 if name in old else -1 for name in new]  # background, then each class
    for layer in CLASS_LAYERS:
        for kind in ("weight", "bias"):
            name = f"{layer}.{kind}"
            if name not in state or name not in own:
                continue
            per_class = own[name].shape[0] // (len(new) + 1)  # 1 (scores) or 4 (box deltas)
            old_rows = state[name].reshape(len(old) + 1, per_class, *state[name].shape[1:])
            merged = own[name].clone().reshape(len(new) + 1, per_class, *own[name].shape[1:])
            for position, row in enumerate(rows):
                if row >= 0:
                    merged[position] = old_rows[row]
            state[name] = merged.reshape(own[name].shape)
    kept = [name for name in new if name in old]
    return (f"{', '.join(CLASS_LAYERS)} for {len(new)} classes ({len(kept)} kept by name: "
            f"{', '.join(kept) or 'none'})")


def export_weights(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike, half: bool = False) -> Path:
    """Write an inference-only checkpoint (config + model weights, no optimiser / RNG state).

    ``half=True`` stores floating-point weights as fp16 (half the size; :func:`load_model` casts back to fp32).
    Returns the output path.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    model = {k: v.half() if half and v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    state = {
        "format_version": FORMAT_VERSION,
        "dsfnet_version": __version__,
        "config": checkpoint["config"],
        "model": model,
        "iteration": checkpoint.get("iteration"),
    }
    return save_checkpoint(out_path, state)


# ---------------------------------------------------------------------------------------------- RNG state
def rng_state() -> dict:
    """Python, numpy, torch (and CUDA, if initialised) generator states, in ``weights_only``-safe types."""
    bit_generator = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": bit_generator["bit_generator"],
            "key": torch.from_numpy(bit_generator["state"]["key"].astype(np.int64)),
            "pos": int(bit_generator["state"]["pos"]),
            "has_gauss": int(bit_generator["has_gauss"]),
            "gauss": float(bit_generator["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states captured by :func:`rng_state`."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state["numpy"]
    np.random.set_state({
        "bit_generator": numpy_state["bit_generator"],
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def training_checkpoint(
    model: torch.nn.Module, config: Config, iteration: int, optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[Any] = None, extra: Optional[dict] = None,
) -> dict:
    """The checkpoint dict of a training run (``model`` may be DDP-wrapped)."""
    module = model.module if hasattr(model, "module") else model
    state = {
        "format_version": FORMAT_VERSION,
        "dsfnet_version": __version__,
        "config": config.to_dict(),
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "iteration": int(iteration),
        "rng": rng_state(),
    }
    if extra:
        state.update(extra)
    return state
