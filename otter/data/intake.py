"""Bringing images into a data set: what it already holds (by content hash), and uploads under the same rule as downloads.

An image whose bytes already sit in any class is a duplicate and is skipped; one that was moved to the
trash before is refused ("trashed before": restore it from the trash instead). Web downloads
(`otter.data.download`) and uploads (`add_images`) both go through `Ledger`, so the rule is one piece of code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections import Counter
from pathlib import Path

from ..config import IMAGE_EXTENSIONS
from . import manifest
from .dataset import add_class, free_name, list_images, rel
from .images import InvalidImage, load_image
from .safepath import UnsafePath, check_name

DUPLICATE = "duplicate"
TRASHED_BEFORE = "trashed before"


class Ledger:
    """Which images the data set already holds (by SHA-256), and the manifest rows still to be written.

    Rows are written in batches (`FLUSH_EVERY`) because rewriting index.csv per image made the
    manifest the bottleneck; the manifest is re-read only when another writer has changed it.
    `lock` serialises this process's threads; `manifest.locked` is for other processes."""

    FLUSH_EVERY = 16

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / manifest.MANIFEST_NAME
        self.known: dict[str, str] = {}  # sha256 -> class/name, images in any class
        self.trashed: set[str] = set()
        self.pending: list[dict] = []
        self.stat: tuple | None = None
        self.lock = threading.Lock()
        with manifest.locked(self.root):
            self._refresh(files_too=True)

    def _file_stat(self) -> tuple | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self, files_too: bool = False) -> None:
        """Re-read the manifest if someone else changed it (call holding `manifest.locked`); at start also hash
        the images on disk that the manifest does not list (put there by hand)."""
        stat = self._file_stat()
        if stat == self.stat and not files_too:
            return
        df = manifest.read(self.root)
        listed = set()
        for f, sha, status in zip(df["file"], df["sha256"], df["status"]):
            if sha and status == "trashed":
                self.trashed.add(sha)
            elif sha:
                self.known[sha] = f
                listed.add(f)
        if files_too:
            for p in list_images(self.root):
                r = rel(self.root, p)
                if r not in listed:
                    self.known[manifest.sha256_file(p)] = r
        self.trashed -= set(self.known)
        self.stat = stat

    def claim(self, hashes: tuple[str, ...]) -> tuple[str, str] | None:
        """None if the image is new; else (DUPLICATE, the existing `class/name`) or (TRASHED_BEFORE, "").
        Call holding `self.lock`, and `add` the image before releasing it."""
        with manifest.locked(self.root):
            self._refresh()
        for h in hashes:
            if h in self.known:
                return DUPLICATE, self.known[h]
        if any(h in self.trashed for h in hashes):
            return TRASHED_BEFORE, ""
        return None

    def add(self, sha: str, row: dict) -> None:
        """Record a kept image (call holding `self.lock`); writes the manifest every `FLUSH_EVERY` rows."""
        self.known[sha] = row["file"]
        self.pending.append(row)
        if len(self.pending) >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        with manifest.locked(self.root):
            df = manifest.read(self.root)
            for row in self.pending:
                df = manifest.add_row(df, **row)
            manifest.write(self.root, df)
            self.stat = self._file_stat()
        self.pending.clear()


def add_images(root: os.PathLike | str, cls: str, files: list[os.PathLike | str], min_side: int = 16) -> dict:
    """Copy image files (e.g. browser uploads) into a class, verifying each. Returns {"added": [class/name],
    "duplicates": [{"file", "existing"}], "rejected": [{"file", "reason"}]}: an image already in any class
    (same bytes) is skipped as a duplicate, one trashed before is rejected."""
    root = Path(root)
    folder = add_class(root, cls)
    ledger = Ledger(root)
    added, duplicates, rejected = [], [], []
    try:
        for f in map(Path, files):
            try:
                with load_image(f, min_side=min_side) as im:
                    w, h = im.size
                name = check_name(f.name, "file name")
                if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                    name = f"{Path(name).stem}.jpg" if Path(name).suffix else f"{name}.jpg"
                data = f.read_bytes()
            except (InvalidImage, UnsafePath) as ex:
                rejected.append({"file": f.name, "reason": str(ex)})
                continue
            sha = hashlib.sha256(data).hexdigest()
            with ledger.lock:
                seen = ledger.claim((sha,))
                if seen is not None and seen[0] == DUPLICATE:
                    duplicates.append({"file": f.name, "existing": seen[1]})
                    continue
                if seen is not None:
                    rejected.append(
                        {"file": f.name, "reason": f"{f.name}: moved to the trash before (restore it from the trash)"}
                    )
                    continue
                with manifest.locked(root):
                    dest = free_name(folder, name)
                    tmp = folder / f".{uuid.uuid4().hex}.part"
                    shutil.copyfile(f, tmp)
                    os.rename(tmp, dest)
                row = {"file": rel(root, dest), "class": cls, "source_url": "upload", "query": "", "sha256": sha}
                ledger.add(sha, row | {"width": w, "height": h, "added": manifest.now(), "status": "kept"})
            added.append(rel(root, dest))
    finally:
        with ledger.lock:
            ledger.flush()
    return {"added": added, "duplicates": duplicates, "rejected": rejected}


def duplicates_by_class(duplicates: list[dict]) -> Counter:
    """How many of `add_images`' duplicates sit in each class: {"river": 80, "sea": 3}."""
    return Counter(d["existing"].split("/", 1)[0] for d in duplicates)
