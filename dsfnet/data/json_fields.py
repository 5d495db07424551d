"""Typed access to the fields of a JSON document that a user gave (CocoVID, COCO, detection files).

``json.loads`` accepts any JSON: a field may be missing, hold a string where a number belongs, a list where an id
belongs (unhashable), ``NaN`` / ``Infinity`` (Python's json reads them), or an integer too large for a float or
for numpy's int64. Each getter returns the value with the type the readers rely on, or raises a one-line
:class:`~dsfnet.errors.InputError` naming ``where`` (the file and the entry) and the key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from dsfnet.errors import InputError

#: the range of numpy's int64, where ids and frame numbers end up
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_MISSING = object()


def load_json(path: Path) -> Any:
    """The JSON document in ``path``; a one-line :class:`InputError` naming it when it is not UTF-8 JSON."""
    try:
        return loads(path.read_text(encoding="utf-8"), str(path))
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not valid JSON (byte {error.start} is not UTF-8)") from None


def loads(text: str, where: str) -> Any:
    """``json.loads(text)``, or a one-line :class:`InputError` starting with ``where`` (with the line, when
    the text has several)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        line = f":{error.lineno}" if "\n" in text.strip() else ""
        raise InputError(f"{where}{line}: not valid JSON ({error.msg}, column {error.colno})") from None
    except ValueError:  # the one other ValueError of json: an integer past Python's 4300-digit limit
        raise InputError(f"{where}: a number of more than 4300 digits") from None
    except RecursionError:  # "[[[[..." deeper than Python's recursion limit
        raise InputError(f"{where}: not valid JSON (nested too deeply)") from None


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages (a value may be a huge list or number)."""
    if is_int(value) and value.bit_length() > 100:  # repr of a huge int is long (and slow past 4300 digits)
        return f"an integer of about {value.bit_length() * 3 // 10} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_int(value: Any) -> bool:
    """A JSON integer (``true`` / ``false`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite JSON number that a float holds (``NaN``, ``Infinity`` and integers past 1e308 are not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def objects(document: dict, key: str, where: str, default: Any = _MISSING) -> list[dict]:
    """``document[key]``, a list of JSON objects (``default`` when the key is missing and a default is given)."""
    if key not in document and default is not _MISSING:
        return default
    value = field(document, key, where)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InputError(f"{where}: '{key}' must be a list of objects, got {shown(value)}")
    return value


def field(item: dict, key: str, where: str) -> Any:
    """``item[key]``; a one-line error naming ``where`` when it is missing."""
    if key not in item:
        raise InputError(f"{where} has no '{key}'")
    return item[key]


def integer(item: dict, key: str, where: str, minimum: Optional[int] = None, default: Any = _MISSING) -> int:
    """``item[key]`` as an int64 integer ``>= minimum``; an integral float (``64.0``, as some tools write) counts.
    ``default`` when the key is missing and a default is given."""
    if key not in item and default is not _MISSING:
        return default
    value = field(item, key, where)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not is_int(value) or not (INT64_MIN if minimum is None else minimum) <= value <= INT64_MAX:
        wanted = "a 64-bit integer" if is_int(value) and not INT64_MIN <= value <= INT64_MAX else "an integer"
        bound = f" >= {minimum}" if minimum is not None else ""
        raise InputError(f"{where}: '{key}' must be {wanted}{bound}, got {shown(value)}")
    return value


def text(item: dict, key: str, where: str) -> str:
    """``item[key]``, a non-empty string."""
    value = field(item, key, where)
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: '{key}' must be a non-empty string, got {shown(value)}")
    return value


def numbers(value: Any, count: int, where: str, what: str, form: str) -> list[float]:
    """``value`` (the field ``what``, e.g. ``bbox``, spelled ``form``, e.g. ``[x, y, w, h]``), a list of ``count``
    finite numbers, as floats."""
    if not isinstance(value, list) or len(value) != count or not all(is_number(v) for v in value):
        raise InputError(f"{where}: {what} must be {count} finite numbers {form}, got {shown(value)}")
    return [float(v) for v in value]


def unique(values: list, what: str, where: str) -> list:
    """``values``, refusing a repeat (``what`` names them in the message): silently merged, repeated ids would
    change the data's counts."""
    seen = set()
    for value in values:
        if value in seen:
            raise InputError(f"{where}: lists {what} {shown(value)} twice")
        seen.add(value)
    return values
