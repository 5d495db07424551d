"""Extension points: four name → implementation tables, filled by a ``register`` decorator.

=====================  ==========================================================================================
registry               what a name maps to (the interface lives beside the built-in ones)
=====================  ==========================================================================================
``BACKBONES``          ``build(config: BackboneConfig) -> Backbone`` (:mod:`dsfnet.models.backbone`): ``conv4``,
                       ``conv5``, their channel counts, the stride, ``freeze_early_stages()``; the builder loads
                       ``config.weights``. Chosen by ``model.backbone.name``.
``DATASET_READERS``    a :class:`dsfnet.data.readers.DatasetReader` subclass (built with no arguments):
                       ``read_split(data, which)`` and ``training_splits(data)`` → ``DatasetRecord``. Chosen by
                       ``data.format``.
``POSTPROCESSORS``     a :class:`dsfnet.postprocess.base.PostProcessor`: an array-level function over one video's
                       detections, its settings and options; :mod:`dsfnet.postprocess.apply` adapts it to whole
                       splits and to per-frame results. Chosen by ``--post``.
``METRICS``            a :class:`dsfnet.evaluation.metrics.Metric`: ``evaluate(ground_truth, detections)``, a
                       summary and a table. Chosen by ``--metrics``.
=====================  ==========================================================================================

A registry is a plain dict behind a small class: ``REGISTRY.register("name")`` decorates (or, called with the
object, registers) an implementation; a name ending in ``:`` registers a family (``timm:`` serves every
``timm:<model>``); ``REGISTRY.get(name, key="data.format")`` returns it or raises a one-line
:class:`dsfnet.errors.ConfigError` naming the key and the registered names; ``REGISTRY.names()`` gives the
choices of the CLI and the config's allowed values. The built-in implementations register when their module is
imported; each registry imports its built-in modules (listed by name below, so that this module imports no other
part of the package) the first time it is read. Code outside the package registers by importing this module
and calling ``register`` before it runs a command (see ``docs/EXTENDING.md``).
"""

from __future__ import annotations

import importlib
from typing import Any, Iterator, Optional

from dsfnet.errors import ConfigError


class Registry:
    """Named implementations of one kind (``kind`` appears in error messages: "unknown backbone 'x'")."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self._builtin_modules = builtin_modules
        self._loaded = False
        self._entries: dict[str, Any] = {}

    def register(self, name: str, obj: Any = None) -> Any:
        """``@REGISTRY.register("name")`` above a function or class, or ``REGISTRY.register("name", obj)``.

        Returns the object (the decorator leaves it unchanged). Registering a taken name is a bug in the
        extension and raises ``KeyError``; :meth:`unregister` first to replace one on purpose.
        """
        if obj is None:
            return lambda target: self.register(name, target)
        if name in self._entries:
            raise KeyError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
        self._entries[name] = obj
        return obj

    def unregister(self, name: str) -> Any:
        """Remove ``name`` (tests that register a toy implementation remove it again); returns its object."""
        self._load_builtins()
        return self._entries.pop(name)

    def get(self, name: str, key: Optional[str] = None) -> Any:
        """The implementation registered as ``name``.

        Raises:
            ConfigError: ``name`` is not registered; the message names ``key`` (a config key or option) and the
                registered names.
        """
        self._load_builtins()
        found = self._lookup(name)
        if found is None:
            where = f" ({key})" if key else ""
            raise ConfigError(f"unknown {self.kind} {name!r}{where}; choose one of {', '.join(self._entries)}")
        return found

    def _lookup(self, name: object) -> Any:
        """The entry of ``name``, or of a registered family prefix (a name ending in ``:``, e.g. ``timm:``) that
        it starts with; ``None`` when there is neither."""
        if name in self._entries:
            return self._entries[name]
        if isinstance(name, str) and ":" in name:
            return self._entries.get(name.split(":", 1)[0] + ":")
        return None

    def names(self) -> tuple[str, ...]:
        """The registered names, built-in ones first, in registration order."""
        self._load_builtins()
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return self._lookup(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def _load_builtins(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # before importing: a built-in module that reads its own registry sees the others
        for module in self._builtin_modules:
            importlib.import_module(module)


BACKBONES = Registry("backbone", ("dsfnet.models.backbone",))
DATASET_READERS = Registry("dataset format", ("dsfnet.data.readers",))
POSTPROCESSORS = Registry("post-processor", ("dsfnet.postprocess.seqnms",))
METRICS = Registry("metric", ("dsfnet.evaluation.metrics",))
