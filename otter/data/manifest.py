"""Provenance of every image in a data set: `<data>/index.csv`, one row per file, kept in step with curation."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from filelock import FileLock

COLUMNS = ["file", "class", "source_url", "query", "sha256", "width", "height", "added", "status"]
MANIFEST_NAME = "index.csv"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_file(path: os.PathLike | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextmanager
def locked(root: os.PathLike | str) -> Iterator[None]:
    """Serialise manifest and folder changes between threads and processes (two browser tabs, CLI + app)."""
    lock_dir = Path(root) / ".otter"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_dir / "data.lock", thread_local=False):  # filelock: Linux, macOS, Windows
        yield


def read(root: os.PathLike | str) -> pd.DataFrame:
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in COLUMNS:
        if col not in df:
            df[col] = ""
    return df[COLUMNS]


def write(root: os.PathLike | str, df: pd.DataFrame) -> None:
    """Write via a temp file and rename, so a crash never leaves half a manifest."""
    path = Path(root) / MANIFEST_NAME
    tmp = path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    df[COLUMNS].to_csv(tmp, index=False)
    os.replace(tmp, path)


def add_row(df: pd.DataFrame, **row: object) -> pd.DataFrame:
    full = {c: "" for c in COLUMNS} | {k: "" if v is None else str(v) for k, v in row.items()}
    return pd.concat([df, pd.DataFrame([full], columns=COLUMNS)], ignore_index=True)


def set_status(
    root: os.PathLike | str, old_file: str, status: str, new_file: str | None = None, new_class: str | None = None
) -> None:
    """Record a curation action on `old_file` (relative `class/name`). Call while holding `locked(root)`."""
    df = read(root)
    hit = df["file"] == old_file
    if not hit.any():
        path = Path(root) / (new_file or old_file)
        df = add_row(
            df,
            file=old_file,
            **{"class": old_file.split("/")[0]},
            source_url="",
            query="",
            sha256=sha256_file(path) if path.is_file() else "",
            added=now(),
            status="kept",
        )
        hit = df["file"] == old_file
    df.loc[hit, "status"] = status
    if new_file is not None:
        df.loc[hit, "file"] = new_file
    if new_class is not None:
        df.loc[hit, "class"] = new_class
    write(root, df)
