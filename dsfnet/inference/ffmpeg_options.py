"""Which FFmpeg options for opening an input FFmpeg does not know (``--input-option bogus_opt=1``).

``avformat_open_input`` hands back the options it did not use, but PyAV drops that dictionary: a mistyped
option would be ignored without a word. FFmpeg's own option tables are asked instead (``av_opt_find`` through
:mod:`ctypes`, in the FFmpeg libraries PyAV has loaded), the way the ``ffmpeg`` tool routes its options: a name
that neither the input side (the format context, every demuxer / device and protocol) nor the decoder side (the
codec context and every decoder) declares cannot be used by any input. An option FFmpeg knows that a particular
input does not read (``rtsp_transport`` for a pipe) passes this check.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
from functools import lru_cache
from typing import Iterable, Optional

#: ``av_opt_find`` search flags: look into the child classes (demuxers, protocols, decoders), without an object
_SEARCH_CHILDREN, _SEARCH_FAKE_OBJ = 1, 2


def unknown_options(names: Iterable[str]) -> list[str]:
    """The ``names`` that no FFmpeg input, protocol or decoder option has, in their order; ``[]`` when FFmpeg's
    libraries cannot be found to ask (then nothing is claimed about any name)."""
    tables = _option_tables()
    if tables is None:
        return []
    find, classes = tables
    unknown = []
    for name in names:
        if not any(find(ctypes.byref(ctypes.c_void_p(cls)), name.encode(), None, 0,
                        _SEARCH_CHILDREN | _SEARCH_FAKE_OBJ) for cls in classes):
            unknown.append(name)
    return unknown


@lru_cache(maxsize=1)
def _option_tables() -> Optional[tuple]:
    """``(av_opt_find, [AVFormatContext's class, AVCodecContext's class])`` of the libraries PyAV uses, or None."""
    import av  # noqa: F401  (loads the libraries, so that /proc/self/maps lists the copies PyAV uses)

    libraries = {name: _library(name) for name in ("avutil", "avformat", "avcodec")}
    if None in libraries.values():
        return None
    try:
        util, fmt, codec = (ctypes.CDLL(path) for path in libraries.values())
    except OSError:
        return None
    util.av_opt_find.restype = ctypes.c_void_p
    util.av_opt_find.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    fmt.avformat_get_class.restype = codec.avcodec_get_class.restype = ctypes.c_void_p
    return util.av_opt_find, [fmt.avformat_get_class(), codec.avcodec_get_class()]


def _library(name: str) -> Optional[str]:
    """The path of FFmpeg's ``lib{name}`` that this process has loaded (Linux), else the copy bundled with PyAV."""
    pattern = re.compile(rf"/lib{name}([-.][^/]*)?\.(so|dylib)")
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            loaded = [line.split()[-1] for line in maps if pattern.search(line)]
    except OSError:
        loaded = []
    if loaded:
        return loaded[0]
    import av

    package = os.path.dirname(av.__file__)
    bundled = [path for folder in (f"{package}.libs", os.path.join(package, ".dylibs"))
               for path in sorted(glob.glob(os.path.join(folder, f"lib{name}*"))) if pattern.search(path)]
    return bundled[0] if bundled else None
