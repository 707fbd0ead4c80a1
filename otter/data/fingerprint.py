"""What a file is, read from the file alone: whether its name is an image's, its SHA-256 (the one content hash of
the data set, its catalog, look-alikes and model.json's "seen"), and its fingerprint for the catalog (size, time,
hash, width, height), read in one pass."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from ..config import IMAGE_EXTENSIONS


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def sha256_file(path: os.PathLike | str) -> str:
    """A file's SHA-256 (hex): the one content hash of the data set, its catalog, look-alikes and model.json's "seen"."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fingerprint_file(path: os.PathLike | str) -> tuple[int, int, str, int | None, int | None]:
    """(size, mtime_ns, sha256, width, height) of a file, reading it once (width and height None if no image)."""
    from PIL import Image

    with open(path, "rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        data = fh.read()
    sha = hashlib.sha256(data).hexdigest()
    size = header_size(data)
    if size is None:
        try:
            with Image.open(io.BytesIO(data)) as im:  # the header only: no pixel is decoded
                size = im.size
        except Exception:  # anything Pillow cannot parse is still listed; `verify` judges it
            size = (None, None)
    return st.st_size, st.st_mtime_ns, sha, size[0], size[1]


_PNG = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # JPEG frame headers


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG's or a JPEG's header (as Pillow's `size`: before any EXIF rotation), or None
    for anything else (Pillow reads it then). By hand, because Pillow's open costs twice the SHA-256 of a small
    photo (40 us against 20) and a first catalog of 100,000 files is meant to keep pace with `sha256sum`."""
    if data[:8] == _PNG and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        i += 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        if marker in _SOF:  # length (2), precision (1), height (2), width (2)
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 3 : i + 5], "big")
        i += int.from_bytes(data[i : i + 2], "big")
    return None


def _fingerprint_or_none(path: Path) -> tuple | None:
    try:
        return fingerprint_file(path)
    except OSError:
        return None  # vanished meanwhile


def fingerprint_many(paths: list[str]) -> list[tuple | None]:
    """`fingerprint_file` of each path (None for one that vanished meanwhile), one after the other: worker
    processes measured slower on this shared 2-core machine (bench/scale.py), and threads too (the GIL)."""
    return [_fingerprint_or_none(p) for p in paths]
