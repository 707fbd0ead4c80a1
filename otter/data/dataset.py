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
from ..errors import BadInput
from . import manifest
from .images import InvalidImage, load_image
from .safepath import UnsafePath, check_name, inside, is_inside

TRASH = ".trash"


class DatasetError(BadInput):
    """A curation request that cannot be carried out; the message says why."""


def _root(root: os.PathLike | str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    return root


def list_classes(root: os.PathLike | str) -> list[str]:
    """Class names: the sub-folders of `root` that are not hidden (sorted)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and is_inside(p, root))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")


def list_images(root: os.PathLike | str, cls: str | None = None) -> list[Path]:
    """Image files of one class, or of all classes, sorted; symlinks that point outside are skipped."""
    root = Path(root)
    classes = [check_name(cls, "class name")] if cls is not None else list_classes(root)
    out: list[Path] = []
    for c in classes:
        folder = root / c
        if not folder.is_dir():
            raise DatasetError(f"no class named {c!r} in {root}")
        out += sorted(p for p in folder.iterdir() if is_image_file(p) and is_inside(p, root))
    return out


def class_counts(root: os.PathLike | str) -> dict[str, int]:
    return {c: len(list_images(root, c)) for c in list_classes(root)}


def add_class(root: os.PathLike | str, name: str) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = inside(root, name, what="class name")
    path.mkdir(exist_ok=True)
    return path


def resolve_image(root: os.PathLike | str, image: os.PathLike | str) -> Path:
    """Accept `class/name` (relative to root) or a file-system path (absolute, or relative to the working folder)
    to an image directly inside a class folder."""
    root = _root(root)
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


def relabel(root: os.PathLike | str, image: os.PathLike | str, new_class: str) -> Path:
    """Move an image to another class folder (created if needed); returns its new path."""
    root = _root(root)
    with manifest.locked(root):
        src = resolve_image(root, image)
        dest_dir = add_class(root, new_class)
        if src.parent == dest_dir:
            return src
        dest = free_name(dest_dir, src.name)
        os.rename(src, dest)
        manifest.set_status(root, rel(root, src), "relabelled", new_file=rel(root, dest), new_class=new_class)
        return dest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def move_to_trash(root: os.PathLike | str, image: os.PathLike | str, reason: str = "deleted") -> str:
    """Move an image into `<root>/.trash/<id>/`, remembering its class and the reason; returns the id."""
    root = _root(root)
    with manifest.locked(root):
        src = resolve_image(root, image)
        trash_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        item_dir = root / TRASH / trash_id
        item_dir.mkdir(parents=True)
        meta = {"id": trash_id, "class": src.parent.name, "name": src.name, "reason": reason, "time": _now()}
        (item_dir / "meta.json").write_text(json.dumps(meta))
        os.rename(src, item_dir / src.name)
        manifest.set_status(root, rel(root, src), "trashed")
        return trash_id


def list_trash(root: os.PathLike | str) -> list[dict]:
    """Trashed items, newest first: id, class, name, reason, time and path of the kept bytes."""
    trash = Path(root) / TRASH
    items = []
    if not trash.is_dir():
        return items
    for item_dir in trash.iterdir():
        meta_file = item_dir / "meta.json"
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        path = item_dir / meta.get("name", "")
        if path.is_file():
            items.append(meta | {"path": str(path)})
    return sorted(items, key=lambda m: m["id"], reverse=True)


def restore(root: os.PathLike | str, trash_id: str) -> Path:
    """Put a trashed image back into its class folder (under a free name); returns the restored path."""
    root = _root(root)
    with manifest.locked(root):
        item_dir = inside(root / TRASH, trash_id, what="trash id")
        try:
            meta = json.loads((item_dir / "meta.json").read_text())
        except (OSError, ValueError) as ex:
            raise DatasetError(f"nothing in the trash with id {trash_id!r} (already restored?)") from ex
        src = inside(item_dir, check_name(meta["name"], "file name"))
        dest_dir = add_class(root, meta["class"])
        dest = free_name(dest_dir, meta["name"])
        os.rename(src, dest)
        shutil.rmtree(item_dir, ignore_errors=True)
        old = f"{meta['class']}/{meta['name']}"
        manifest.set_status(root, old, "kept", new_file=rel(root, dest))
        return dest


def empty_trash(root: os.PathLike | str) -> int:
    """Delete every trashed image for good; returns how many. Only `<root>/.trash/<id>/` folders go: a trash that
    is a symlink is refused, and a symlink inside it is removed as a link, never followed."""
    root = _root(root)
    trash = root / TRASH
    with manifest.locked(root):
        if trash.is_symlink() or not is_inside(trash, root):
            raise DatasetError(f"{trash} is not a folder inside {root}; not emptying it")
        if not trash.is_dir():
            return 0
        n = len(list_trash(root))
        for entry in trash.iterdir():
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink()
            else:
                shutil.rmtree(entry)
        return n


def verify_folder(root: os.PathLike | str, min_side: int = 16) -> dict:
    """Fully decode every image; move broken, empty, non-image, too small and too large files to the trash
    with the reason. Returns {"checked", "ok", "trashed": [{"file", "reason", "trash_id"}]}."""
    root = _root(root)
    trashed = []
    images = list_images(root)
    for path in images:
        try:
            load_image(path, min_side=min_side)
        except InvalidImage as ex:
            reason = ex.detail
            trash_id = move_to_trash(root, rel(root, path), reason=reason)
            trashed.append({"file": rel(root, path), "reason": reason, "trash_id": trash_id})
    return {"checked": len(images), "ok": len(images) - len(trashed), "trashed": trashed}


def _with_row(df, root: Path, path: Path, source: str):
    """`df` plus the manifest row of an image now in a class folder (size left blank if unreadable)."""
    try:
        with load_image(path) as im:
            w, h = im.size
    except InvalidImage:
        w = h = ""
    return manifest.add_row(
        df,
        file=rel(root, path),
        **{"class": path.parent.name},
        source_url=source,
        query="",
        sha256=manifest.sha256_file(path),
        width=w,
        height=h,
        added=manifest.now(),
        status="kept",
    )


def rescan(root: os.PathLike | str) -> int:
    """Add manifest rows for images put into class folders by hand; returns how many were added."""
    root = _root(root)
    with manifest.locked(root):
        df = manifest.read(root)
        known = set(df["file"])
        new = 0
        for p in list_images(root):
            r = rel(root, p)
            if r in known:
                continue
            df = _with_row(df, root, p, source="local")
            new += 1
        if new:
            manifest.write(root, df)
        return new
