"""A frozen view of a data set's files for a job that reads them for minutes (training): the list fixed at start,
and the bytes too, so curating meanwhile (moving, trashing, restoring photos) neither fails the job nor changes
what it trains on.

The snapshot is a folder of hard links, `<data>/.otter/snapshots/<id>/<class>/<name>`: one link per image (no
copy: the same bytes, on the same disk), so a photo moved or trashed during the job is still there for it; it
is removed when the job ends (and snapshots left by a killed job are removed by the next). Where links cannot be
made (a file system without them, a read-only folder), files are copied, or, failing that, the job reads the
live folders as before.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SNAPSHOTS = Path(".otter") / "snapshots"
STALE_SECONDS = 2 * 24 * 3600  # a snapshot this old belongs to a job that died: removed at the next


def _remove_stale(folder: Path) -> None:
    cutoff = time.time() - STALE_SECONDS
    for old in folder.iterdir() if folder.is_dir() else ():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


@contextmanager
def frozen(data_dir: os.PathLike | str, items: list[Path]) -> Iterator[list[Path]]:
    """`items` (images inside `data_dir`'s class folders) as paths into a snapshot, in the same order, with the
    same `<class>/<name>` ends; removed when the block ends."""
    data_dir = Path(data_dir)
    base = data_dir / SNAPSHOTS
    folder = base / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale(base)
        folder.mkdir()
    except OSError:
        yield list(items)  # a folder we cannot write to: the live files, as before
        return
    try:
        out = []
        for p in items:
            dest = folder / p.parent.name / p.name
            dest.parent.mkdir(exist_ok=True)
            try:
                os.link(p, dest)
            except OSError:
                shutil.copy2(p, dest)  # no hard links here (or across devices): a copy
            out.append(dest)
        yield out
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for empty in (base, base.parent):
            try:
                empty.rmdir()  # only when nothing else is there (a data set without a catalog stays as it was)
            except OSError:
                break
