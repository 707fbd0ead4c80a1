"""The data set's catalog: one row per image in a class folder, the trash, and a history of actions, in SQLite
(`<data>/.otter/catalog.sqlite`, WAL mode), so every action and every view costs what it touches, not the size
of the data set.

A row holds an image's class, name, size, modification time, SHA-256, width, height, source, query and when it
was added. A file is hashed once: when it first appears, or when its size or modification time changed.

Folders edited by hand are reconciled by `sync`: a folder's own modification time changes when a file is added,
removed or renamed in it, so a quick sync stats the class folders (not their files) and lists only those that
changed; a full sync (`sync(full=True)`: once per process, `python -m otter data scan`, before training) also
stats every file, and still reads only new or changed ones. A file that vanished from one folder and appeared
in another with the same size and modification time (moved by hand, or by an action a kill -9 cut short) keeps
its row's hash and provenance.

Changes are made by `dataset`'s actions inside `transaction`: the data lock (a file lock: threads, processes),
then one SQLite transaction, however many images the action moves. A process killed mid-action leaves the
catalog as it was; the files it already moved are found by the next sync, as hand edits are.

What a file is (`fingerprint`) and what changed in the folders (`folder_scan`) are read from the file system by
their own modules; this one records what they find.

`index.csv` (the former manifest) is imported once, when the catalog is created; `export_index` writes one on
demand, in the old columns.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from .fingerprint import fingerprint_file, fingerprint_many, is_image_name
from .folder_scan import ROOT_KEY, changed_folders, class_dirs, clean_time, diff_folder, mtime_ns

DB_NAME = "catalog.sqlite"
STATE_DIR = ".otter"
TRASH = ".trash"
INDEX_CSV = "index.csv"
INDEX_COLUMNS = ["file", "class", "source_url", "query", "sha256", "width", "height", "added", "status"]
SCHEMA_VERSION = 1
FIRST_CATALOG_LOG = 1_000  # files from which a first catalog is one line in the history, not one per file

SCHEMA = """
CREATE TABLE IF NOT EXISTS files(
  path TEXT PRIMARY KEY, class TEXT NOT NULL, name TEXT NOT NULL, size INTEGER, mtime_ns INTEGER,
  sha256 TEXT, width INTEGER, height INTEGER, source TEXT DEFAULT '', query TEXT DEFAULT '', added TEXT,
  status TEXT DEFAULT 'kept');
CREATE INDEX IF NOT EXISTS files_class ON files(class, name);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS folders(name TEXT PRIMARY KEY, mtime_ns INTEGER);
CREATE TABLE IF NOT EXISTS trash(
  id TEXT PRIMARY KEY, class TEXT, name TEXT, sha256 TEXT, reason TEXT, time TEXT, size INTEGER,
  width INTEGER, height INTEGER, source TEXT DEFAULT '', query TEXT DEFAULT '', added TEXT, gone INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS trash_sha ON trash(sha256);
CREATE INDEX IF NOT EXISTS trash_live ON trash(gone, id);
CREATE TABLE IF NOT EXISTS actions(id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT, kind TEXT, origin TEXT, n INTEGER);
CREATE TABLE IF NOT EXISTS history(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, action INTEGER, time TEXT, event TEXT, file TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
"""

_full_synced: set[str] = set()  # data roots fully synced by this process
_full_lock = threading.Lock()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def db_path(root: os.PathLike | str) -> Path:
    return Path(root) / STATE_DIR / DB_NAME


def exists(root: os.PathLike | str) -> bool:
    return db_path(root).is_file()


_held = threading.local()  # the data locks this thread holds (a held lock is taken again without waiting)


@contextmanager
def locked(root: os.PathLike | str) -> Iterator[None]:
    """The data lock: serialises folder and catalog changes between threads and processes (tabs, CLI + app).
    Re-entrant within a thread."""
    lock_dir = Path(root) / STATE_DIR
    key = os.path.realpath(lock_dir)
    held = _held.__dict__.setdefault("roots", set())
    if key in held:
        yield
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_dir / "data.lock", thread_local=False):  # filelock: Linux, macOS, Windows
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)


def _connect(root: Path) -> sqlite3.Connection:
    path = db_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA busy_timeout=60000")
    if con.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        with locked(root):
            con.execute("PRAGMA journal_mode=WAL")
            if con.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                con.executescript(f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
                _import_index(con, root)
    con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a power cut may lose the last commit, never corrupt
    return con


@contextmanager
def connection(root: os.PathLike | str, sync_first: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection to the catalog of `root` (created, and index.csv imported, the first time), synced with
    the folders first (quickly; fully once per process)."""
    root = Path(root)
    with closing(_connect(root)) as con:
        if sync_first:
            sync(root, con)
        yield con


@contextmanager
def transaction(root: os.PathLike | str, kind: str, origin: str = "app") -> Iterator[tuple[sqlite3.Connection, int]]:
    """(connection, action id) for one user action: under the data lock, folders synced, one SQLite transaction
    that commits when the block ends and rolls back if it raises (or the process dies)."""
    root = Path(root)
    with locked(root), closing(_connect(root)) as con:
        _sync_locked(root, con, full=_needs_full(root))
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute("INSERT INTO actions(time, kind, origin, n) VALUES (?, ?, ?, 0)", (now(), kind, origin))
            action = cur.lastrowid
            yield con, action
            n = con.execute("SELECT count(*) FROM history WHERE action=?", (action,)).fetchone()[0]
            con.execute("UPDATE actions SET n=? WHERE id=?", (n, action))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def log(con: sqlite3.Connection, action: int, event: str, file: str, **detail) -> None:
    con.execute(
        "INSERT INTO history(action, time, event, file, detail) VALUES (?, ?, ?, ?, ?)",
        (action, now(), event, file, json.dumps(detail) if detail else ""),
    )


# ------------------------------------------------------------------------------------------------ sync


def _needs_full(root: Path) -> bool:
    with _full_lock:
        return str(root.resolve()) not in _full_synced


def _mark_full(root: Path) -> None:
    with _full_lock:
        _full_synced.add(str(root.resolve()))


def forget_full_sync(root: os.PathLike | str) -> None:
    """Make the next sync of `root` in this process a full one (tests, and after an edit that keeps folder times)."""
    with _full_lock:
        _full_synced.discard(str(Path(root).resolve()))


def sync(root: os.PathLike | str, con: sqlite3.Connection | None = None, full: bool = False) -> dict:
    """Bring the catalog in step with the folders (see the module's note); returns {"added", "removed",
    "changed", "moved"} counts. Takes the data lock only when something changed."""
    root = Path(root)
    if con is None:
        with closing(_connect(root)) as c:
            return sync(root, c, full)
    full = full or _needs_full(root)
    if not full and not changed_folders(root, con):
        return {"added": 0, "removed": 0, "changed": 0, "moved": 0}
    with locked(root):
        return _sync_locked(root, con, full)


def _sync_locked(root: Path, con: sqlite3.Connection, full: bool) -> dict:
    changed = set(changed_folders(root, con)) if not full else None
    counts = {"added": 0, "removed": 0, "changed": 0, "moved": 0}
    if changed is not None and not changed:
        return counts
    root_time = mtime_ns(root)
    classes = class_dirs(root)
    con.execute("BEGIN IMMEDIATE")
    try:
        known = dict(con.execute("SELECT name, mtime_ns FROM folders").fetchall())
        listed_classes = {r[0] for r in con.execute("SELECT DISTINCT class FROM files")}
        vanished: list[sqlite3.Row] = []
        new: list[tuple[str, str, os.stat_result]] = []
        for cls in sorted(set(classes) | (set(known) - {ROOT_KEY, TRASH}) | listed_classes):
            if cls not in classes:  # a class folder removed by hand
                vanished += con.execute("SELECT * FROM files WHERE class=?", (cls,)).fetchall()
                con.execute("DELETE FROM folders WHERE name=?", (cls,))
                continue
            if changed is not None and cls in known and cls not in changed:
                continue
            folder_time = mtime_ns(root / cls)
            v, n, edited = diff_folder(root, cls, con, full)
            vanished += v
            new += n
            for row, st in edited:
                new.append((cls, row["name"], st))
                vanished.append(row)
            con.execute(
                "INSERT OR REPLACE INTO folders(name, mtime_ns) VALUES (?, ?)",
                (cls, clean_time(folder_time)),
            )
        counts = _apply_diff(root, con, vanished, new)
        if full or changed is None or TRASH in changed or TRASH not in known:
            trash_time = mtime_ns(root / TRASH)
            _sync_trash(root, con)
            con.execute("INSERT OR REPLACE INTO folders(name, mtime_ns) VALUES (?, ?)", (TRASH, clean_time(trash_time)))
        con.execute("INSERT OR REPLACE INTO folders(name, mtime_ns) VALUES (?, ?)", (ROOT_KEY, clean_time(root_time)))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if full:
        _mark_full(root)
    return counts


def _apply_diff(root: Path, con: sqlite3.Connection, vanished: list, new: list) -> dict:
    """Record files gone and files new: a new file with the size and time of a vanished one (a move) keeps its row's
    hash and provenance; the others are hashed."""
    counts = {"added": 0, "removed": 0, "changed": 0, "moved": 0}
    if not vanished and not new:
        return counts
    action = None
    first = con.execute("SELECT 1 FROM files LIMIT 1").fetchone() is None

    def act() -> int:
        nonlocal action
        if action is None:
            action = con.execute(
                "INSERT INTO actions(time, kind, origin, n) VALUES (?, 'sync', 'folders', 0)", (now(),)
            ).lastrowid
        return action

    by_stamp: dict[tuple, list] = {}
    for row in vanished:
        by_stamp.setdefault((row["size"], row["mtime_ns"]), []).append(row)
    edited_paths = {row["path"] for row in vanished}
    todo = []
    for cls, name, st in new:
        if not by_stamp:
            todo.append((cls, name))
            continue
        st = st.stat() if isinstance(st, os.DirEntry) else st
        path = f"{cls}/{name}"
        same = by_stamp.get((st.st_size, st.st_mtime_ns)) or []
        match = same[0] if len(same) == 1 and same[0]["path"] != path else None
        if match is not None:
            by_stamp.pop((st.st_size, st.st_mtime_ns))
            con.execute("DELETE FROM files WHERE path=?", (match["path"],))
            insert_row(con, path, cls, name, st.st_size, st.st_mtime_ns, match["sha256"], match["width"], match["height"],
                    match["source"], match["query"], match["added"], match["status"])  # fmt: skip
            log(con, act(), "moved by hand", path, was=match["path"])
            counts["moved"] += 1
        else:
            todo.append((cls, name))
    todo_paths = {f"{c}/{n}" for c, n in todo}
    for rows in by_stamp.values():
        for row in rows:
            con.execute("DELETE FROM files WHERE path=?", (row["path"],))
            if row["path"] not in todo_paths:
                log(con, act(), "removed by hand", row["path"], sha256=row["sha256"])
                counts["removed"] += 1
    when = now()
    found, history = [], []
    base = str(root)
    for (cls, name), fp in zip(todo, fingerprint_many([os.path.join(base, c, n) for c, n in todo])):
        if fp is None:
            continue
        path = f"{cls}/{name}"
        found.append((path, cls, name, *fp, "local", "", when, "kept"))
        edited = path in edited_paths
        history.append(("changed by hand" if edited else "added by hand", path, fp[2]))
        counts["changed" if edited else "added"] += 1
    con.executemany(
        "INSERT OR REPLACE INTO files(path, class, name, size, mtime_ns, sha256, width, height, source, query, added, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        found,
    )
    if len(history) > FIRST_CATALOG_LOG and counts["added"] == len(history) and first:
        log(con, act(), "catalogued", "", added=len(history))  # a first catalog: one line, not one per file
    elif history:
        action_id = act()
        con.executemany(
            "INSERT INTO history(action, time, event, file, detail) VALUES (?, ?, ?, ?, ?)",
            ((action_id, when, event, path, f'{{"sha256": "{sha}"}}') for event, path, sha in history),
        )
    return counts


def insert_row(con, path, cls, name, size, mtime_ns, sha, w, h, source, query, added, status) -> None:
    """Add or replace the row of one image (in the caller's transaction)."""
    con.execute(
        "INSERT OR REPLACE INTO files(path, class, name, size, mtime_ns, sha256, width, height, source, query, added, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (path, cls, name, size, mtime_ns, sha, w, h, source or "", query or "", added, status),
    )


def _sync_trash(root: Path, con: sqlite3.Connection) -> None:
    """Trash items put there by an action the catalog did not record (a kill -9), or removed by hand."""
    trash = root / TRASH
    present = set()
    if trash.is_dir() and not trash.is_symlink():
        present = {e.name for e in os.scandir(trash) if e.is_dir(follow_symlinks=False)}
    live = {r[0] for r in con.execute("SELECT id FROM trash WHERE gone=0")}
    for gone in live - present:
        con.execute("UPDATE trash SET gone=1 WHERE id=?", (gone,))
    for item in present - live:
        try:
            meta = json.loads((trash / item / "meta.json").read_text())
            path = trash / item / os.path.basename(meta["name"])
            size, _, sha, w, h = fingerprint_file(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an item cut short before its file arrived, or not ours
        con.execute(
            "INSERT OR REPLACE INTO trash(id, class, name, sha256, reason, time, size, width, height, source, query, added, gone)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, 0)",
            (item, meta.get("class", ""), meta["name"], sha, meta.get("reason", ""), meta.get("time", ""), size, w, h,
             meta.get("time", "")),
        )  # fmt: skip


# ------------------------------------------------------------------------------------------------ index.csv


def _import_index(con: sqlite3.Connection, root: Path) -> None:
    """Rows of an existing index.csv (the former manifest), once, when the catalog is created. The hashes it
    lists are trusted for files still there (with their current size and time); trashed rows keep the
    "trashed before" rule. Files it does not list are found by the first sync."""
    path = root / INDEX_CSV
    if not path.is_file():
        return
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError, csv.Error):
        return
    con.execute("BEGIN IMMEDIATE")
    for k, r in enumerate(rows):
        file, sha = r.get("file", ""), r.get("sha256", "")
        if r.get("status") == "trashed":
            if sha:
                cls, _, name = file.partition("/")
                con.execute(
                    "INSERT OR IGNORE INTO trash(id, class, name, sha256, reason, time, source, query, added, gone)"
                    " VALUES (?, ?, ?, ?, 'index.csv', '', ?, ?, ?, 1)",
                    (f"index-{k}", cls, name, sha, r.get("source_url", ""), r.get("query", ""), r.get("added", "")),
                )
            continue
        cls, _, name = file.partition("/")
        try:
            st = os.stat(root / cls / name)
        except OSError:
            continue
        if not sha or not is_image_name(name):
            continue
        w, h = (int(r[k]) if str(r.get(k, "")).isdigit() else None for k in ("width", "height"))
        insert_row(con, file, cls, name, st.st_size, st.st_mtime_ns, sha, w, h, r.get("source_url", ""), r.get("query", ""),
                r.get("added", "") or now(), r.get("status") or "kept")  # fmt: skip
    con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('imported index.csv', ?)", (now(),))
    con.execute("COMMIT")


def index_rows(con: sqlite3.Connection) -> Iterable[tuple]:
    """index.csv's rows (INDEX_COLUMNS): current images ("kept" or "relabelled"), then the trash ("trashed", or
    "deleted" once the trash was emptied)."""
    yield from con.execute(
        "SELECT path, class, source, query, sha256, coalesce(width, ''), coalesce(height, ''), added, status FROM files ORDER BY path"
    )
    yield from con.execute(
        "SELECT class || '/' || name, class, source, query, sha256, coalesce(width, ''), coalesce(height, ''), added,"
        " CASE gone WHEN 0 THEN 'trashed' ELSE 'deleted' END FROM trash ORDER BY id"
    )


def export_index(root: os.PathLike | str, dest: os.PathLike | str | None = None) -> Path:
    """Write the catalog as index.csv (INDEX_COLUMNS; by default `<data>/index.csv`), atomically; returns its path."""
    root = Path(root)
    dest = Path(dest) if dest is not None else root / INDEX_CSV
    with connection(root) as con:
        rows = list(index_rows(con))
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(INDEX_COLUMNS)
        w.writerows(rows)
    os.replace(tmp, dest)
    return dest


# ------------------------------------------------------------------------------------------------ reads


def classes(con: sqlite3.Connection, root: os.PathLike | str) -> list[str]:
    """Class folders (sorted), as the last sync saw them: the folders table, less the root and the trash."""
    return sorted(r[0] for r in con.execute("SELECT name FROM folders WHERE name NOT IN (?, ?)", (ROOT_KEY, TRASH)))


def counts(con: sqlite3.Connection) -> dict[str, int]:
    return dict(con.execute("SELECT class, count(*) FROM files GROUP BY class").fetchall())


def images(con: sqlite3.Connection, cls: str | None = None, limit: int = -1, offset: int = 0) -> list[str]:
    """`class/name` of the images of one class (or all), sorted by class then name; a page with limit/offset."""
    if cls is None:
        q = con.execute("SELECT path FROM files ORDER BY class, name LIMIT ? OFFSET ?", (limit, offset))
    else:
        q = con.execute("SELECT path FROM files WHERE class=? ORDER BY name LIMIT ? OFFSET ?", (cls, limit, offset))
    return [r[0] for r in q]


def rows(con: sqlite3.Connection, cls: str | None = None) -> list[sqlite3.Row]:
    """Every column of the images of one class (or all), in `images` order."""
    if cls is None:
        return con.execute("SELECT * FROM files ORDER BY class, name").fetchall()
    return con.execute("SELECT * FROM files WHERE class=? ORDER BY name", (cls,)).fetchall()


def row(con: sqlite3.Connection, path: str) -> sqlite3.Row | None:
    return con.execute("SELECT * FROM files WHERE path=?", (path,)).fetchone()


def trash_count(con: sqlite3.Connection) -> int:
    return con.execute("SELECT count(*) FROM trash WHERE gone=0").fetchone()[0]


def trash_items(con: sqlite3.Connection, limit: int = -1, offset: int = 0) -> list[dict]:
    """Trashed items, newest first: id, class, name, reason, time, sha256."""
    q = con.execute(
        "SELECT id, class, name, reason, time, sha256 FROM trash WHERE gone=0 ORDER BY id DESC LIMIT ? OFFSET ?",
        (limit, offset),
    )
    return [dict(r) for r in q]


def trash_by_id(con: sqlite3.Connection, ids: Iterable[str]) -> list[dict]:
    q = "SELECT id, class, name, reason, time, sha256 FROM trash WHERE gone=0 AND id=?"
    return [dict(r) for i in ids for r in con.execute(q, (i,))]


def where_is(con: sqlite3.Connection, shas: Iterable[str]) -> dict[str, str]:
    """{sha256: class/name} for the given hashes that an image in a class folder has (the first, by name)."""
    out: dict[str, str] = {}
    for sha in shas:
        r = con.execute("SELECT path FROM files WHERE sha256=? ORDER BY path LIMIT 1", (sha,)).fetchone()
        if r is not None:
            out[sha] = r[0]
    return out


def was_trashed(con: sqlite3.Connection, sha: str) -> bool:
    return con.execute("SELECT 1 FROM trash WHERE sha256=? LIMIT 1", (sha,)).fetchone() is not None
