"""A data set is a folder with one subfolder per class. List, add, relabel, trash and restore, verify.

Look-alikes and exact copies are found by `otter.review.similar` (from the images' embeddings).

Nothing is ever deleted: removal moves a file to `<data>/.trash/<id>/` with a note of where it came from
and why, and `restore` puts it back byte for byte. Every name that comes from a user goes through
`safepath`, so no action reaches outside the data root.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from ..config import IMAGE_EXTENSIONS
from ..errors import BadInput, OtterError
from . import catalog
from .fingerprint import fingerprint_file
from .folder_scan import folder_time
from .images import InvalidImage, load_image
from .safepath import UnsafePath, check_class_name, check_name, inside, is_inside

TRASH = catalog.TRASH


class DatasetError(BadInput):
    """A curation request that cannot be carried out; the message says why."""


def data_root(root: os.PathLike | str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    return root


def list_classes(root: os.PathLike | str) -> list[str]:
    """Class names: the sub-folders of `root` that are not hidden (sorted). From the catalog when the folder has
    one (a stat per class folder); a folder without one (a test set) is listed and nothing is written to it."""
    root = Path(root)
    if not root.is_dir():
        return []
    if catalog.exists(root):
        with catalog.connection(root) as con:
            return catalog.classes(con, root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and is_inside(p, root))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")


def list_images(root: os.PathLike | str, cls: str | None = None) -> list[Path]:
    """Image files of one class, or of all classes, sorted; symlinks that point outside are skipped. From the
    catalog when the folder has one (see `list_classes`)."""
    root = Path(root)
    if cls is not None:
        check_name(cls, "class name")
    if catalog.exists(root):
        with catalog.connection(root) as con:
            if cls is not None and cls not in catalog.classes(con, root):
                raise DatasetError(f"no class named {cls!r} in {root}")
            return [root / r for r in catalog.images(con, cls)]
    classes = [cls] if cls is not None else list_classes(root)
    out: list[Path] = []
    for c in classes:
        folder = root / c
        if not folder.is_dir():
            raise DatasetError(f"no class named {c!r} in {root}")
        out += sorted(p for p in folder.iterdir() if is_image_file(p) and is_inside(p, root))
    return out


def class_counts(root: os.PathLike | str) -> dict[str, int]:
    """{class: number of images}, every class (empty ones too), from the catalog (created if missing)."""
    root = data_root(root)
    with catalog.connection(root) as con:
        n = catalog.counts(con)
        return {c: n.get(c, 0) for c in catalog.classes(con, root)}


def add_class(root: os.PathLike | str, name: str) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = inside(root, name, what="class name")
    if not path.is_dir():  # a new class: a plain name (one made by hand keeps working, escaped where shown)
        check_class_name(name)
    path.mkdir(exist_ok=True)
    return path


def resolve_image(root: os.PathLike | str, image: os.PathLike | str) -> Path:
    """Accept `class/name` (relative to root) or a file-system path (absolute, or relative to the working folder)
    to an image directly inside a class folder."""
    root = data_root(root)
    p = Path(image)
    if not p.is_absolute() and len(p.parts) == 2:
        p = inside(root, *p.parts)
    else:  # a file-system path (absolute, or relative to the working folder like `data/river/x.jpg`)
        p = Path(os.path.abspath(p))
        real_root = Path(os.path.realpath(root))
        real_parent = Path(os.path.realpath(p.parent))
        if real_parent.parent != real_root or p.name.startswith(".") or real_parent.name.startswith("."):
            raise UnsafePath(f"{str(image)!r} is not an image inside {root}")
        p = inside(root, real_parent.name, p.name)
    if p.is_symlink() and not is_inside(p, root):
        raise UnsafePath(f"{str(image)!r} points outside {root}")
    if not p.is_file():
        raise DatasetError(f"no image {rel(root, p)!r}")
    return p


def rel(root: os.PathLike | str, path: os.PathLike | str) -> str:
    """`class/name` for a path inside root."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/stem-1.ext`, `-2`… when taken."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    i = 1
    while target.exists():
        target = folder / f"{stem}-{i}{suffix}"
        i += 1
    return target


# --------------------------------------------------------------------------------------------- actions
# Each takes many images and is one catalog transaction (`catalog.transaction`: the data lock, then one SQLite
# transaction); an image that cannot be changed is reported in the results, the others still are.

Result = tuple[str, object]  # (what was asked for, the outcome or the OtterError that stopped it)


def _row_of(con, root: Path, src: Path):
    """The catalog row of an image, hashing it now if the catalog does not list it yet (put there a moment ago)."""
    r = rel(root, src)
    row = catalog.row(con, r)
    if row is None:
        size, mtime, sha, w, h = fingerprint_file(src)
        catalog.insert_row(con, r, src.parent.name, src.name, size, mtime, sha, w, h, "local", "", _now(), "kept")
        row = catalog.row(con, r)
    return row


def _touched(con, root: Path, folders: set[str]) -> None:
    """After an action changed these folders (knowing them fully: the action synced them under the lock): record
    their new times, so the next view does not list them again (a folder of 50,000 takes 0.25 s). A file copied in
    by hand within the same tick of the clock as the action's last rename (a few ms) goes unseen until the next
    full sync (each process's first, `data scan`, training, computing embeddings): the price of not listing."""
    for name in folders:
        con.execute("INSERT OR REPLACE INTO folders(name, mtime_ns) VALUES (?, ?)", (name, folder_time(root / name)))


def _each_in_one_transaction(root: Path, kind: str, origin: str, items: list, folders: set[str], act) -> list[Result]:
    """[(item, act(con, action, item, folders) or the error)] for each item, in one catalog transaction of `kind`:
    a bad item (an OtterError, or an OSError said in a line) fails alone. `act` adds the folders it changed to
    `folders`; their times are recorded at the end (`_touched`)."""
    out: list[Result] = []
    with catalog.transaction(root, kind, origin) as (con, action):
        for item in items:
            try:
                out.append((item, act(con, action, item, folders)))
            except (OtterError, OSError) as ex:
                out.append((item, ex if isinstance(ex, OtterError) else DatasetError(f"{item}: {ex.strerror or ex}")))
        _touched(con, root, folders)
    return out


def relabel_many(root: os.PathLike | str, images: list, new_class: str, origin: str = "app") -> list[Result]:
    """Move images to another class folder (created if needed), in one transaction: [(image, new path or error)]."""
    root = data_root(root)
    dest_dir = add_class(root, new_class)

    def move(con, action: int, image, folders: set[str]) -> Path:
        src = resolve_image(root, image)
        if src.parent == dest_dir:
            return src
        old = rel(root, src)
        _row_of(con, root, src)
        dest = free_name(dest_dir, src.name)
        os.rename(src, dest)
        con.execute(
            "UPDATE files SET path=?, class=?, name=?, status='relabelled' WHERE path=?",
            (rel(root, dest), dest_dir.name, dest.name, old),
        )
        catalog.log(con, action, "moved", rel(root, dest), was=old)
        folders.add(src.parent.name)
        return dest

    return _each_in_one_transaction(root, "move", origin, images, {dest_dir.name}, move)


def _first(results: list[Result]):
    outcome = results[0][1]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def relabel(root: os.PathLike | str, image: os.PathLike | str, new_class: str) -> Path:
    """Move an image to another class folder (created if needed); returns its new path."""
    return _first(relabel_many(root, [image], new_class))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def trash_many(root: os.PathLike | str, images: list, reason: str = "deleted", origin: str = "app") -> list[Result]:
    """Move images into `<root>/.trash/<id>/` (with a note of their class and the reason), in one transaction:
    [(image, trash id or error)]."""
    root = data_root(root)

    def trash(con, action: int, image, folders: set[str]) -> str:
        src = resolve_image(root, image)
        row = _row_of(con, root, src)
        trash_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        item_dir = root / TRASH / trash_id
        item_dir.mkdir(parents=True)
        meta = {"id": trash_id, "class": src.parent.name, "name": src.name, "reason": reason, "time": _now()}
        (item_dir / "meta.json").write_text(json.dumps(meta))
        os.rename(src, item_dir / src.name)
        con.execute("DELETE FROM files WHERE path=?", (row["path"],))
        con.execute(
            "INSERT INTO trash(id, class, name, sha256, reason, time, size, width, height, source, query, added, gone)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (trash_id, meta["class"], meta["name"], row["sha256"], reason, meta["time"], row["size"], row["width"],
             row["height"], row["source"], row["query"], row["added"]),
        )  # fmt: skip
        catalog.log(con, action, "trashed", row["path"], id=trash_id, reason=reason)
        folders.add(src.parent.name)
        return trash_id

    return _each_in_one_transaction(root, "trash", origin, images, {TRASH}, trash)


def move_to_trash(root: os.PathLike | str, image: os.PathLike | str, reason: str = "deleted") -> str:
    """Move an image into `<root>/.trash/<id>/`, remembering its class and the reason; returns the id."""
    return _first(trash_many(root, [image], reason))


def trash_item(root: Path, item: dict) -> dict:
    return item | {"path": str(root / TRASH / item["id"] / item["name"])}


def list_trash(root: os.PathLike | str, limit: int = -1, offset: int = 0) -> list[dict]:
    """Trashed items, newest first: id, class, name, reason, time, sha256 and path of the kept bytes (a page of
    them with limit/offset)."""
    root = Path(root)
    if not root.is_dir():
        return []
    with catalog.connection(root) as con:
        return [trash_item(root, i) for i in catalog.trash_items(con, limit, offset)]


def trash_count(root: os.PathLike | str) -> int:
    root = Path(root)
    if not root.is_dir():
        return 0
    with catalog.connection(root) as con:
        return catalog.trash_count(con)


def restore_many(root: os.PathLike | str, ids: list[str], origin: str = "app") -> list[Result]:
    """Put trashed images back into their class folders (under a free name), in one transaction:
    [(id, restored path or error)]."""
    root = data_root(root)

    def restore_one(con, action: int, trash_id: str, folders: set[str]) -> Path:
        item_dir = inside(root / TRASH, trash_id, what="trash id")
        try:
            meta = json.loads((item_dir / "meta.json").read_text())
        except (OSError, ValueError) as ex:
            raise DatasetError(f"nothing in the trash with id {trash_id!r} (already restored?)") from ex
        src = inside(item_dir, check_name(meta["name"], "file name"))
        dest_dir = add_class(root, meta["class"])
        dest = free_name(dest_dir, meta["name"])
        item = con.execute("SELECT * FROM trash WHERE id=?", (trash_id,)).fetchone()
        size, mtime, sha, w, h = fingerprint_file(src) if item is None else (0, 0, item["sha256"], item["width"], item["height"])
        os.rename(src, dest)
        shutil.rmtree(item_dir, ignore_errors=True)
        st = dest.stat()
        catalog.insert_row(con, rel(root, dest), dest_dir.name, dest.name, st.st_size, st.st_mtime_ns, sha, w, h,
                           item["source"] if item else "local", item["query"] if item else "",
                           item["added"] if item else _now(), "kept")  # fmt: skip
        con.execute("DELETE FROM trash WHERE id=?", (trash_id,))
        catalog.log(con, action, "restored", rel(root, dest), id=trash_id)
        folders.add(dest_dir.name)
        return dest

    return _each_in_one_transaction(root, "restore", origin, ids, {TRASH}, restore_one)


def restore(root: os.PathLike | str, trash_id: str) -> Path:
    """Put a trashed image back into its class folder (under a free name); returns the restored path."""
    return _first(restore_many(root, [trash_id]))


def empty_trash(root: os.PathLike | str, origin: str = "app") -> int:
    """Delete every trashed image for good; returns how many. Only `<root>/.trash/<id>/` folders go: a trash that
    is a symlink is refused, and a symlink inside it is removed as a link, never followed. Their hashes are
    kept, so the same images are still refused as "trashed before"."""
    root = data_root(root)
    trash = root / TRASH
    if trash.is_symlink() or (trash.exists() and not is_inside(trash, root)):
        raise DatasetError(f"{trash} is not a folder inside {root}; not emptying it")
    with catalog.transaction(root, "empty trash", origin) as (con, action):
        if not trash.is_dir():
            return 0
        n = catalog.trash_count(con)
        for entry in trash.iterdir():
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink()
            else:
                shutil.rmtree(entry)
        con.execute("UPDATE trash SET gone=1 WHERE gone=0")
        catalog.log(con, action, "emptied trash", "", n=n)
        _touched(con, root, {TRASH})
        return n


def verify_folder(root: os.PathLike | str, min_side: int = 16) -> dict:
    """Fully decode every image; move broken, empty, non-image, too small and too large files to the trash
    with the reason. Returns {"checked", "ok", "trashed": [{"file", "reason", "trash_id"}]}."""
    root = data_root(root)
    catalog.sync(root, full=True)
    images = list_images(root)
    bad = {}
    for path in images:
        try:
            load_image(path, min_side=min_side)
        except InvalidImage as ex:
            bad[rel(root, path)] = ex.detail
    trashed = []
    for reason in sorted(set(bad.values())):  # one transaction per reason (the trash notes one reason an item)
        files = [f for f, r in bad.items() if r == reason]
        for f, trash_id in trash_many(root, files, reason=reason):
            if isinstance(trash_id, str):
                trashed.append({"file": f, "reason": reason, "trash_id": trash_id})
    trashed.sort(key=lambda t: t["file"])
    return {"checked": len(images), "ok": len(images) - len(trashed), "trashed": trashed}


def rescan(root: os.PathLike | str) -> int:
    """Bring the catalog in step with images added, removed or edited by hand (every file statted, only new or
    changed ones read); returns how many were added."""
    root = data_root(root)
    return catalog.sync(root, full=True)["added"]
