"""Index cache of the VID reader: time to read a split of 100,000 annotation files, first parse vs. cached.

Writes a minimal VID tree (``--snippets`` x ``--frames`` tiny XML files, one object each, no images: the index
never opens them), indexes ``VID_train_15frames`` twice with ``index_split`` (split file -> flat arrays: what the
cache stores) and prints both times and their ratio (acceptance: the second, cached one takes < 5 % of the
first). Also prints the same for ``check_files=True`` (one stat per XML) and the time ``read_vid_split`` adds to
build the 100,000 frame records, which is the same with or without the cache. Usage::

    python benchmarks/index_cache.py [--snippets 1000] [--frames 100] [--dir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from dsfnet.data.vid import index_split, read_vid_split

XML = ("<annotation><folder>f</folder><filename>{frame:06d}</filename><size><width>640</width><height>480</height>"
       "</size><object><trackid>0</trackid><name>n02691156</name><bndbox><xmax>{x2}</xmax><xmin>{x1}</xmin>"
       "<ymax>300</ymax><ymin>100</ymin></bndbox><occluded>0</occluded><generated>0</generated></object>"
       "</annotation>\n")


def write_tree(root: Path, snippets: int, frames: int) -> None:
    lines = []
    for s in range(snippets):
        name = f"train/ILSVRC2015_VID_train_{s // 1000:04d}/ILSVRC2015_train_{s:08d}"
        folder = root / "Annotations" / "VID" / name
        folder.mkdir(parents=True)
        for f in range(frames):
            (folder / f"{f:06d}.xml").write_text(XML.format(frame=f, x1=10 + f, x2=200 + f))
        lines += [f"{name} 1 {f} {frames}" for f in sorted({(2 * i + 1) * frames // 30 for i in range(15)})]
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "VID_train_15frames.txt").write_text("\n".join(lines) + "\n")


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snippets", type=int, default=1000, help="snippets to write (default 1000)")
    parser.add_argument("--frames", type=int, default=100, help="annotation files per snippet (default 100)")
    parser.add_argument("--dir", default=None, help="where to write the tree (default: a temporary folder)")
    args = parser.parse_args()
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="dsfnet_index_bench_"))
    root = base / "ILSVRC2015"
    try:
        start = time.perf_counter()
        write_tree(root, args.snippets, args.frames)
        print(f"wrote {args.snippets * args.frames} annotation files in {time.perf_counter() - start:.1f} s")
        for check_files in (False, True):
            cache = base / f"cache_{check_files}"
            first, _ = _timed(lambda: index_split(root, "VID_train_15frames", cache, check_files=check_files))
            cached, _ = _timed(lambda: index_split(root, "VID_train_15frames", cache, check_files=check_files))
            label = "check_files=True " if check_files else "default          "
            print(f"{label} first indexing (parse + write cache): {first:6.2f} s   second (cache): {cached:5.3f} s"
                  f"   ratio {100 * cached / first:4.1f} % (target < 5 %)")
        records, dataset = _timed(lambda: read_vid_split(root, "VID_train_15frames", base / "cache_False"))
        assert sum(len(video) for video in dataset.videos) == args.snippets * args.frames
        print(f"read_vid_split from the cache, records included: {records:.2f} s")
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
