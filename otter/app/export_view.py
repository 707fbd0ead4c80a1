"""Export the data set as a zip (`images/<class>/<name>` and `index.csv`), written outside the data folder. No
Gradio here; `otter.app.curate` offers it to the app."""

from __future__ import annotations

import csv
import io
import os
import tempfile
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from ..data import catalog, dataset
from ..data.dataset import DatasetError
from ..data.safepath import is_inside
from ..errors import OtterError, escape_md

EXPORT_INDEX = "index.csv"
EXPORT_DIR = "otter-exports"  # in the system's temporary folder
EXPORT_KEEP_SECONDS = 3600  # older zips there are removed at the next export, so exports never fill the disk


def _remove_old_exports(folder: Path) -> None:
    cutoff = datetime.now(timezone.utc).timestamp() - EXPORT_KEEP_SECONDS
    for old in folder.glob("*.zip"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another export removed it, or it is not ours to remove


def export_zip(root: os.PathLike | str, dest_dir: os.PathLike | str | None = None) -> tuple[Path, int]:
    """Zip the data set: every class's images under `images/<class>/<name>` and `index.csv` (path,label, paths
    relative to the zip). Written into `dest_dir` (by default EXPORT_DIR in the temporary folder, where zips over
    an hour old are removed), never inside the data folder. Returns (the zip, how many images it holds)."""
    root = Path(root)
    dest = Path(dest_dir) if dest_dir is not None else Path(tempfile.gettempdir()) / EXPORT_DIR
    if is_inside(dest, root):
        raise DatasetError("the export is written outside the data folder, never into it")
    dest.mkdir(parents=True, exist_ok=True)
    _remove_old_exports(dest)
    with catalog.locked(root):  # nothing moves while the zip is written: its index matches its files
        return _write_zip(root, dest)


def _write_zip(root: Path, dest: Path) -> tuple[Path, int]:
    images = dataset.list_images(root)
    if not images:
        raise DatasetError("nothing to export: the data set has no images yet")
    # Two exports at the same second (two visitors) get two files.
    zip_path = dest / f"{root.name or 'data'}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}.zip"
    tmp = zip_path.with_suffix(".part")
    rows = []
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:  # JPEGs do not shrink further
        for p in images:
            arc = f"images/{p.parent.name}/{p.name}"
            zf.write(p, arc)
            rows.append((arc, p.parent.name))
        index = io.StringIO()
        csv.writer(index, lineterminator="\n").writerows([("path", "label"), *rows])
        zf.writestr(EXPORT_INDEX, index.getvalue())
    os.replace(tmp, zip_path)
    return zip_path, len(rows)


def export_view(root: os.PathLike | str, dest_dir: os.PathLike | str | None = None) -> tuple[str | None, str]:
    """(the zip to download or None, a line saying what it holds or why there is none)."""
    try:
        path, n = export_zip(root, dest_dir)
    except OtterError as ex:
        return None, f"⚠️ Cannot export: {escape_md(ex)}"
    classes = dataset.list_classes(root)
    return str(
        path
    ), f"Exported {n} images in {len(classes)} classes ({', '.join(classes)}): images/<class>/… and index.csv (path,label)."
