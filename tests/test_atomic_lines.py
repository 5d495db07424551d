"""Lines of a growing file (``dsfnet.atomic``): ``drop_last_lines`` reads back only as far as the lines it
drops, whatever its block size; ``append_whole`` adds whole lines."""

from __future__ import annotations

import pytest

from dsfnet.atomic import append_whole, drop_last_lines

LINES = [f'{{"frame_index": {index}, "detections": [{"x" * (index % 13)!r}]}}\n'.encode() for index in range(40)]


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
@pytest.mark.parametrize("count", [0, 1, 2, 17, 40, 45])
def test_drop_last_lines_removes_and_returns_them(tmp_path, block, count):
    path = tmp_path / "detections.jsonl"
    with open(path, "wb", buffering=0) as handle:
        for line in LINES:
            append_whole(handle, line)
    dropped = drop_last_lines(path, count, block=block)
    kept = max(0, len(LINES) - count)
    assert dropped == LINES[kept:]
    assert path.read_bytes() == b"".join(LINES[:kept])
