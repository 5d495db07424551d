"""Parsing a user's XML annotation file (ImageNet VID, CVAT exports) into an ElementTree, with one-line errors."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from dsfnet.errors import InputError, InputNotFound


def parse_xml(path: str | os.PathLike) -> ET.Element:
    """The root element of the XML file ``path``.

    Raises:
        InputNotFound: ``path`` does not exist.
        InputError: malformed XML (``PATH:LINE: malformed XML (...)``), or an XML declaration naming an encoding
            that Python does not know or expat cannot read (``encoding="uuf-8"``, ``"utf-16"`` in a UTF-8 file).
    """
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise InputNotFound(f"annotation file not found: {path}") from None
    except ET.ParseError as error:
        line, column = error.position
        raise InputError(f"{path}:{line}: malformed XML ({str(error).split(':')[0]}, column {column})") from None
    except (LookupError, ValueError) as error:  # the declaration's encoding: unknown, or multi-byte
        raise InputError(f"{path}: malformed XML (the declared encoding cannot be read: {error})") from None
