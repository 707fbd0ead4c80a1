"""Perceptual hashes of a data set's images: imagehash's pHash, 64 bits from the lowest frequencies of the image's
discrete cosine transform at 32 x 32 grey levels.

It shrugs off what moves an image's embedding most: blur, downscaling, heavy JPEG, brightness (a blurred or shrunk
and re-encoded copy is 0-3 bits from its original, where different photos are 12 or more apart; bench/RESULTS.md),
and it misses what the embedding finds: crops, mirror images, rotations. `otter.review.similar` counts a pair as
look-alikes when either says so.

The hashes are cached by content beside the embeddings, in `<data>/.otter/phash.json` (plain JSON: the spec and
{sha256: 16 hex digits}), so only added or edited images are hashed; a cache made with another spec, or one that
does not parse, is rebuilt.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from ..config import STATE_DIR
from ..data.images import InvalidImage, load_image
from ..model.jobs import TrainingCancelled

HASH_SIZE = 8  # imagehash's default: an 8 x 8 = 64-bit hash
CACHE_FILE = Path(STATE_DIR) / "phash.json"
CANCEL_EVERY = 64  # images hashed between two looks at the cancel flag (about 0.2 s)


def spec() -> dict:
    """What the hashes depend on; a cache made with anything else is recomputed."""
    try:
        version = metadata.version("ImageHash")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"hash": "imagehash.phash", "hash_size": HASH_SIZE, "imagehash": version, "image": "otter.data.images.load_image"}


def image_phash(path: os.PathLike | str) -> int:
    """The 64-bit pHash of an image file (EXIF rotation applied, as everywhere else); InvalidImage if unreadable."""
    import imagehash

    return int(str(imagehash.phash(load_image(path), hash_size=HASH_SIZE)), 16)


def cache_path(data_dir: os.PathLike | str) -> Path:
    return Path(data_dir) / CACHE_FILE


def load_cache(path: Path) -> dict[str, int]:
    """{sha256: hash} from the cache file; {} when it is missing, of another spec, or damaged."""
    try:
        data = json.loads(path.read_text())
        if data.get("spec") != spec():
            return {}
        return {str(k): int(v, 16) for k, v in data["phash"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_cache(path: Path, hashes: Mapping[str, int]) -> None:
    """Write the cache atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"spec": spec(), "phash": {k: f"{v:016x}" for k, v in sorted(hashes.items())}}))
    os.replace(tmp, path)


def phash_folder(
    data_dir: os.PathLike | str,
    paths_by_sha: Mapping[str, Path],
    compute_missing: bool = True,
    cancel: threading.Event | None = None,
) -> dict[str, int]:
    """{sha256: pHash} for the images of a data folder given as {sha256: a path with those bytes}, from the cache
    where it has them; the others are hashed (unless `compute_missing` is False: they are then left out, as are
    unreadable images). The cache keeps exactly these images' hashes; one that cannot be written is skipped."""
    path = cache_path(data_dir)
    cached = load_cache(path)
    out = {sha: cached[sha] for sha in paths_by_sha if sha in cached}
    todo = [sha for sha in paths_by_sha if sha not in cached] if compute_missing else []
    for k, sha in enumerate(todo):
        if cancel is not None and k % CANCEL_EVERY == 0 and cancel.is_set():
            raise TrainingCancelled("hashing the images was cancelled")
        try:
            out[sha] = image_phash(paths_by_sha[sha])
        except InvalidImage:
            continue
    if compute_missing and out.keys() != cached.keys():
        try:
            save_cache(path, out)
        except OSError:
            pass  # a read-only data folder: hashed again next time, which takes seconds
    return out
