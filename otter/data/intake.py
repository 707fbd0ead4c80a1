"""Bringing images into a data set: what it already holds (by content hash), and uploads under the same rule as downloads.

An image whose bytes already sit in any class is a duplicate and is skipped; one that was moved to the
trash before is refused ("trashed before": restore it from the trash instead). Web downloads
(`otter.data.download`) and uploads (`add_images`) both go through `Ledger`, so the rule is one piece of code.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections import Counter
from pathlib import Path

from ..config import IMAGE_EXTENSIONS
from . import catalog
from .dataset import add_class, free_name, rel
from .fingerprint import sha256_file
from .folder_scan import folder_time
from .images import InvalidImage, load_image
from .safepath import UnsafePath, check_name

DUPLICATE = "duplicate"
TRASHED_BEFORE = "trashed before"


class Ledger:
    """Which images the data set already holds (by SHA-256) and which were trashed before, asked of the catalog
    per image (an indexed look-up: an upload costs the same at 1,000 images as at 100,000); the rows of images
    kept meanwhile are recorded in batches (`FLUSH_EVERY`), each one catalog transaction.
    `lock` serialises this process's threads; the catalog's data lock is for other processes."""

    FLUSH_EVERY = 64

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.known: dict[str, str] = {}  # sha256 -> class/name of images kept but not yet recorded
        self.pending: list[dict] = []
        self.lock = threading.Lock()

    def claim(self, hashes: tuple[str, ...]) -> tuple[str, str] | None:
        """None if the image is new; else (DUPLICATE, the existing `class/name`) or (TRASHED_BEFORE, "").
        Call holding `self.lock`, and `add` the image before releasing it."""
        for h in hashes:
            if h in self.known:
                return DUPLICATE, self.known[h]
        with catalog.connection(self.root) as con:
            where = catalog.where_is(con, hashes)
            for h in hashes:
                if h in where:
                    return DUPLICATE, where[h]
            if any(catalog.was_trashed(con, h) for h in hashes):
                return TRASHED_BEFORE, ""
        return None

    def add(self, sha: str, row: dict) -> None:
        """Record a kept image (call holding `self.lock`); writes the catalog every `FLUSH_EVERY` rows."""
        self.known[sha] = row["file"]
        self.pending.append(row)
        if len(self.pending) >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        with catalog.transaction(self.root, "add", "intake") as (con, action):
            for r in self.pending:
                path = self.root / r["file"]
                try:
                    st = path.stat()
                except OSError:
                    continue  # moved or trashed meanwhile: the sync has seen to it
                cls, name = r["file"].split("/", 1)
                w, h = (int(r[k]) if str(r.get(k, "")).isdigit() else None for k in ("width", "height"))
                catalog.insert_row(con, r["file"], cls, name, st.st_size, st.st_mtime_ns, r["sha256"], w, h,
                                r.get("source_url", ""), r.get("query", ""), r.get("added") or catalog.now(), "kept")  # fmt: skip
                catalog.log(con, action, "added", r["file"], source=r.get("source_url", ""))
        self.pending.clear()
        self.known.clear()


def add_images(root: os.PathLike | str, cls: str, files: list[os.PathLike | str], min_side: int = 16) -> dict:
    """Copy image files (e.g. browser uploads) into a class, verifying each, in one catalog transaction. Returns
    {"added": [class/name], "duplicates": [{"file", "existing"}], "rejected": [{"file", "reason"}]}: an image
    already in any class (same bytes) is skipped as a duplicate, one trashed before is rejected."""
    root = Path(root)
    folder = add_class(root, cls)
    added, duplicates, rejected, checked = [], [], [], []
    for f in map(Path, files):  # verified and hashed before the data lock is taken
        try:
            with load_image(f, min_side=min_side) as im:
                w, h = im.size
            name = check_name(f.name, "file name")
            if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                name = f"{Path(name).stem}.jpg" if Path(name).suffix else f"{name}.jpg"
            sha = sha256_file(f)
        except (InvalidImage, UnsafePath) as ex:
            rejected.append({"file": f.name, "reason": str(ex)})
            continue
        checked.append((f, name, sha, w, h))
    if not checked:
        return {"added": added, "duplicates": duplicates, "rejected": rejected}
    with catalog.transaction(root, "upload") as (con, action):
        mine: dict[str, str] = {}  # sha -> class/name added by this upload
        for f, name, sha, w, h in checked:
            existing = mine.get(sha) or catalog.where_is(con, [sha]).get(sha)
            if existing:
                duplicates.append({"file": f.name, "existing": existing})
                continue
            if catalog.was_trashed(con, sha):
                rejected.append({"file": f.name, "reason": f"{f.name}: moved to the trash before (restore it from the trash)"})
                continue
            dest = free_name(folder, name)
            tmp = folder / f".{uuid.uuid4().hex}.part"
            shutil.copyfile(f, tmp)
            os.rename(tmp, dest)
            st = dest.stat()
            catalog.insert_row(
                con, rel(root, dest), cls, dest.name, st.st_size, st.st_mtime_ns, sha, w, h, "upload", "", catalog.now(), "kept"
            )
            catalog.log(con, action, "added", rel(root, dest), source="upload")
            mine[sha] = rel(root, dest)
            added.append(rel(root, dest))
        con.execute("INSERT OR REPLACE INTO folders(name, mtime_ns) VALUES (?, ?)", (folder.name, folder_time(folder)))
    return {"added": added, "duplicates": duplicates, "rejected": rejected}


def duplicates_by_class(duplicates: list[dict]) -> Counter:
    """How many of `add_images`' duplicates sit in each class: {"river": 80, "sea": 3}."""
    return Counter(d["existing"].split("/", 1)[0] for d in duplicates)
