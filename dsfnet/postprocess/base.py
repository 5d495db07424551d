"""The interface of an offline post-processor (``--post NAME``), registered in
:data:`dsfnet.registry.POSTPROCESSORS`; :mod:`dsfnet.postprocess.apply` runs it on a split or a video's frames."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: ``run(frames int [N], boxes float [N, 4], labels int [N], scores float [N], settings)`` on one video's
#: detections → ``(keep int64 [M] ascending indices of the kept detections, scores float64 [M] their new scores)``
ArrayFunction = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class PostProcessor:
    """A post-processor of a whole video's detections.

    Attributes:
        run: the array-level function (:data:`ArrayFunction`); frames whose numbers differ by one are adjacent.
        help: what ``--post NAME`` does, for ``--help``.
        settings: ``args -> settings`` from the parsed command line (a dataclass: ``report.json`` records its
            fields); raises :class:`dsfnet.errors.InputError` naming the option of a bad value.
        add_arguments: adds the post-processor's own options (``--NAME-...``) to the "post-processing" group.
        label: its name in progress bars.
    """

    run: ArrayFunction
    help: str
    settings: Callable[[argparse.Namespace], Any]
    add_arguments: Callable[[argparse._ArgumentGroup], None] = lambda group: None
    label: str = "post-processing"
