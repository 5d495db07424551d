"""What the fuzz tests share: the readers' contract, mutations of valid files, and checks of what a reader returns.

The contract of every reader of a user's file: for any bytes, it returns valid records or raises a
:class:`dsfnet.errors.DsfnetError` (what the command line prints as one line, exit 2) whose one-line message
names the file; any other exception is a bug (the command line shows its traceback).

Inputs start from a valid file that the test writes and are mutated twice over: as bytes (truncated, bytes
flipped, inserted or deleted) and as a document (a value replaced by one of another type, a key or an element
dropped, an entry repeated). Runs are derandomised, so CI always tries the same examples;
``DSFNET_FUZZ_EXAMPLES=N`` runs N random examples per test instead, to hunt for new bugs locally.
"""

from __future__ import annotations

import copy
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dsfnet.data.records import DatasetRecord
from dsfnet.errors import DsfnetError

_HUNT = os.environ.get("DSFNET_FUZZ_EXAMPLES")

#: the settings of every fuzz test: a fixed set of examples in CI (``derandomize``), no per-example deadline
#: (the first example of a test pays for imports), no example database (nothing written into the work tree)
FUZZ = settings(max_examples=int(_HUNT) if _HUNT else 150, deadline=None, derandomize=not _HUNT, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def read_or_input_error(read: Callable[[], Any], *paths: Path) -> Any:
    """``read()``'s result, or ``None`` when it raised the one-line input error naming one of ``paths`` (the
    files it read); any other exception propagates (the test fails with its traceback)."""
    try:
        return read()
    except DsfnetError as error:
        message = str(error)
        assert "\n" not in message, f"a multi-line message: {message!r}"
        assert any(path.name in message for path in paths), f"the message names none of {paths}: {message!r}"
        return None


# ------------------------------------------------------------------------------------------------ byte mutations

#: bytes that matter to the formats read: JSON / XML / YAML syntax, number spellings, non-UTF-8
_TOKENS = [b'"', b"{", b"}", b"[", b"]", b",", b":", b"-", b"0", b"9", b".", b"e", b"1e999", b"NaN", b"-Infinity",
           b"null", b"\n", b" ", b"\t", b"<", b">", b"/", b"=", b"&", b"\xff", b"\x00", b"#", b"*", b"&a", b"!!",
           b"- ", b"? "]

_EDIT = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.one_of(st.sampled_from(_TOKENS), st.binary(min_size=1,
                                                                                                 max_size=6))),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 12)),
)


def _apply(data: bytes, edit: tuple) -> bytes:
    kind, where, *rest = edit
    at = min(int(where * len(data)), max(len(data) - 1, 0))
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ rest[0]]) + data[at + 1:] if data else data
    if kind == "insert":
        return data[:at] + rest[0] + data[at:]
    return data[:at] + data[at + rest[0]:]


def mutated_bytes(valid: bytes, max_edits: int = 4) -> st.SearchStrategy[bytes]:
    """``valid`` after 1..``max_edits`` byte edits."""
    return st.lists(_EDIT, min_size=1, max_size=max_edits).map(
        lambda edits: _fold(valid, edits))


def _fold(data: bytes, edits: list) -> bytes:
    for edit in edits:
        data = _apply(data, edit)
    return data


# -------------------------------------------------------------------------------------------- document mutations

#: values of the wrong type or range for any field of the formats read
ODD_VALUES = [None, True, False, 0, -1, 1, 2 ** 63, -(10 ** 30), 10 ** 400, 1.5, -0.0, 1e308, math.nan, math.inf,
              -math.inf, "", "x", "1", "-1", "nan", [], {}, [1, 2, 3, 4], [0, 0, -5, -5], {"id": 1}, [[1]],
              "a/b/../c"]

_DOC_EDIT = st.tuples(st.floats(0, 1), st.sampled_from(["replace", "drop", "repeat"]), st.sampled_from(ODD_VALUES))


def _nodes(document: Any, path: tuple = ()) -> list[tuple]:
    """Every path into ``document`` (dict keys and list positions), the root first, in document order."""
    found = [path]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _nodes(value, path + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _nodes(value, path + (index,))
    return found


def _edit_document(document: Any, edit: tuple) -> Any:
    where, kind, value = edit
    paths = _nodes(document)[1:]
    if not paths:
        return copy.deepcopy(value)
    path = paths[min(int(where * len(paths)), len(paths) - 1)]
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if kind == "replace":
        parent[last] = copy.deepcopy(value)
    elif kind == "drop":
        del parent[last]
    elif isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    else:  # a key beside it that the format does not have, holding a copy of its value
        parent[f"{last}_"] = copy.deepcopy(parent[last])
    return document


def mutated_document(valid: Any, max_edits: int = 3) -> st.SearchStrategy[Any]:
    """A deep copy of the JSON-like ``valid`` after 1..``max_edits`` edits (values replaced by ``ODD_VALUES``,
    keys / items dropped, items repeated, unknown keys added)."""
    def edited(edits: list) -> Any:
        document = copy.deepcopy(valid)
        for edit in edits:
            document = _edit_document(document, edit)
        return document

    return st.lists(_DOC_EDIT, min_size=1, max_size=max_edits).map(edited)


#: attribute values and element texts of the wrong kind for XML formats
ODD_TEXTS = ["", " ", "-1", "0", "1.5", "nan", "inf", "-inf", "1e999", "1e30", "99999999999999999999", "123456789012",
             "abc", " 7 ", "0x10", "1_0", "step=0", "step=-2", "step=x", "2", "n02691156", "n99999999"]

_XML_EDIT = st.tuples(st.floats(0, 1), st.sampled_from(["text", "attribute", "drop", "repeat"]),
                      st.sampled_from(ODD_TEXTS), st.floats(0, 1))


def _edit_xml(root: ET.Element, edit: tuple) -> None:
    where, kind, text, which = edit
    elements = list(root.iter())
    element = elements[min(int(where * len(elements)), len(elements) - 1)]
    parents = {child: parent for parent in root.iter() for child in parent}
    if kind == "text":
        element.text = text
    elif kind == "attribute" and element.attrib:
        keys = sorted(element.attrib)
        element.set(keys[min(int(which * len(keys)), len(keys) - 1)], text)
    elif kind == "drop" and element in parents:
        parents[element].remove(element)
    elif kind == "repeat" and element in parents:
        parents[element].append(copy.deepcopy(element))


def mutated_xml(valid: str, max_edits: int = 3) -> st.SearchStrategy[bytes]:
    """``valid`` XML after 1..``max_edits`` element edits (odd texts and attributes, elements dropped or
    repeated), serialised."""
    def edited(edits: list) -> bytes:
        root = ET.fromstring(valid)
        for edit in edits:
            _edit_xml(root, edit)
        return ET.tostring(root)

    return st.lists(_XML_EDIT, min_size=1, max_size=max_edits).map(edited)


def any_input(valid: bytes) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, arbitrary text, or ``valid`` with byte edits."""
    return st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), mutated_bytes(valid))


# ------------------------------------------------------------------------------------------- checks of records


def check_dataset(dataset: DatasetRecord) -> None:
    """What the rest of dsfnet relies on in a dataset a reader returned (see :mod:`dsfnet.data.records`)."""
    assert isinstance(dataset.class_names, tuple) and all(isinstance(n, str) for n in dataset.class_names)
    for video in dataset.videos:
        assert isinstance(video.name, str)
        indices = [frame.frame_index for frame in video.frames]
        assert all(type(i) is int and i >= 0 for i in indices) and len(set(indices)) == len(indices), indices
        for frame in video.frames:
            _check_frame(frame, len(dataset.class_names))
    for v, f in dataset.key_frames:
        assert 0 <= v < len(dataset.videos) and 0 <= f < len(dataset.videos[v].frames)


def _check_frame(frame, num_classes: int) -> None:
    assert isinstance(frame.image_path, str) and isinstance(frame.video, str)
    assert type(frame.width) is int and type(frame.height) is int and frame.width > 0 and frame.height > 0
    boxes = np.asarray(frame.boxes)
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and np.isfinite(boxes).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= frame.width - 1).all()
    assert (boxes[:, [1, 3]] <= frame.height - 1).all()
    labels, tracks = np.asarray(frame.labels), np.asarray(frame.track_ids)
    assert labels.dtype == np.int64 and tracks.dtype == np.int64
    assert len(labels) == len(tracks) == len(boxes) and ((labels >= 1) & (labels <= num_classes)).all()
    assert len(frame.flags("occluded")) == len(frame.flags("degraded")) == len(boxes)
