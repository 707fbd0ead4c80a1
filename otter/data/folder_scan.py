"""What changed in the folders since the catalog last looked, read from the file system: the folders whose time
moved (one stat each), and in a folder, the files gone, new, or (in a full sync) edited. `catalog.sync` records
what this finds."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from .fingerprint import is_image_name

# A folder changed less than this long ago may change again within the same tick of the file system's clock
# without its time moving (racy, as git calls it): it is not marked clean, so the next sync lists it again.
RACY_NS = 50_000_000
ROOT_KEY = ""  # folders row of the data root itself (its time changes when a class folder is added or removed)


def mtime_ns(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


MISSING = -1  # the recorded time of a folder that is not there (the trash before anything was trashed)


def folder_time(path: Path) -> int:
    t = mtime_ns(path)
    return MISSING if t is None else t


def clean_time(mtime: int | None) -> int | None:
    """The folder time to record, or None while it is racy (changed within RACY_NS): listed again next sync."""
    if mtime is None or mtime == MISSING:
        return MISSING
    return mtime if time.time_ns() - mtime > RACY_NS else None


def real_inside(path: str, real_root: str) -> bool:
    real = os.path.realpath(path)
    return real.startswith(real_root.rstrip(os.sep) + os.sep)


def class_dirs(root: Path) -> list[str]:
    real_root = os.path.realpath(root)
    out = []
    with os.scandir(root) as it:
        for e in it:
            if e.name.startswith(".") or not e.is_dir():
                continue
            if e.is_symlink() and not real_inside(e.path, real_root):
                continue
            out.append(e.name)
    return sorted(out)


def changed_folders(root: Path, con: sqlite3.Connection) -> list[str] | None:
    """Folders ("" for the root, class names, TRASH) whose time differs from the catalog's: a stat per folder."""
    recorded = dict(con.execute("SELECT name, mtime_ns FROM folders").fetchall())
    changed = []
    if ROOT_KEY not in recorded or recorded[ROOT_KEY] is None or recorded[ROOT_KEY] != folder_time(root):
        changed.append(ROOT_KEY)
    for name, t in recorded.items():
        if name != ROOT_KEY and (t is None or t != folder_time(root / name)):
            changed.append(name)
    return changed


def diff_folder(root: Path, cls: str, con: sqlite3.Connection, full: bool):
    """(rows whose file is gone, [(cls, name, stat or DirEntry)] of files not listed, [(row, stat)] of listed files
    whose size or time changed: only looked for in a full sync). A quick one reads the names alone (a folder of
    10,000 in about 30 ms), and whole rows only for the files that are gone."""
    if full:
        known = {r[0]: (r[1], r[2]) for r in con.execute("SELECT name, size, mtime_ns FROM files WHERE class=?", (cls,))}
    else:
        known = dict.fromkeys(r[0] for r in con.execute("SELECT name FROM files WHERE class=?", (cls,)))
    real_root = os.path.realpath(root)
    present: dict[str, os.DirEntry] = {}
    with os.scandir(root / cls) as it:
        for e in it:
            if is_image_name(e.name) and e.is_file() and (not e.is_symlink() or real_inside(e.path, real_root)):
                present[e.name] = e
    q = "SELECT * FROM files WHERE path=?"
    vanished = [con.execute(q, (f"{cls}/{name}",)).fetchone() for name in known.keys() - present.keys()]
    new, edited = [], []
    for name, e in present.items():
        if name not in known:
            new.append((cls, name, e))  # statted only if something vanished (to match a move): hashing fstats it
        elif full:
            st = e.stat()
            if (st.st_size, st.st_mtime_ns) != known[name]:
                edited.append((con.execute(q, (f"{cls}/{name}",)).fetchone(), st))
    return vanished, new, edited
