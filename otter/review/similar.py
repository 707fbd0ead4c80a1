"""Look-alikes: the same photo twice, edited (cropped, mirrored, rotated, grey, a box pasted on, re-encoded,
blurred), found from the images' embeddings (`otter.review.embeddings`), as fastai's `ImageClassifierCleaner.from_similars`
ranked pairs by the network's own features.

A plain cosine threshold does not work on a data set of one subject: two different otter photos are often
more alike (cosine 0.8-0.9) than a photo and its blurred copy (0.65). What sets a copy apart is that it is far
more alike to its original than to anything else. So a pair's `score` is its cosine similarity (of embeddings
centred on the data set's mean) minus the mean of the two images' usual similarity (to their nearest
neighbours after their own copies, `usual_similarity`): how much closer the two are than each is to its ordinary
neighbours (the CSLS correction of Conneau et al., 2018). Pairs scoring at least NEAR_SCORE are look-alikes.
Heavy blur, downscaling and JPEG move an embedding so far that its copy can score below that (or even below zero),
so a pair whose perceptual hashes (`otter.review.perceptual`) differ in at most MAX_HASH_BITS bits is a look-alike too,
whatever its score. Groups are the connected sets of look-alike pairs. Measured on the sample photos with planted
edited copies: bench/lookalikes.py, bench/RESULTS.md.

Memory stays bounded: similarities are computed a block of rows at a time and only each image's nearest
CANDIDATES neighbours are kept, which holds every pair that can reach the threshold (see `scored_pairs`).
Pairs the user marked "not a duplicate" are remembered by content hash in `<data>/.otter/not_duplicates.json`
and never grouped again.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..config import state_dir
from ..data import dataset, manifest
from ..model.jobs import BackgroundJob, TrainingCancelled
from ..progress import Event
from .embeddings import Embeddings, embed_folder

NEAR_SCORE = 0.20  # bench/lookalikes.py: 8.3 of 10 edited copies and all 4-version photos grouped, 3-4 other groups
MAX_HASH_BITS = 4  # pHash bits two look-alikes may differ in (blurred, shrunk + JPEG copies: 0-3; different sample
# photos: 12 or more). With it: 9.5 of 10 copies grouped, no other group added (bench/lookalikes.py, bench/RESULTS.md)
NEIGHBOURS = 3  # an image's usual similarity: the mean over this many neighbours after its copies (`usual_similarity`)
COPY_SIMILARITY = 0.85  # centred cosine from which a neighbour counts as an image's copy in `usual_similarity` (versions of
# one photo: 0.86-0.98; different shots of one scene: about 0.7; an image's nearest other photo: 0.45, 0.67 at the 90th centile)
MAX_COPIES = 7  # at most this many look-alikes of one image are skipped when measuring its usual similarity
CANDIDATES = 12  # neighbours kept per image (>= MAX_COPIES + 1 + NEIGHBOURS); pairs are looked for among them
BLOCK_ROWS = 256  # rows of the similarity matrix computed at once: 256 x 20,000 floats = 20 MB
NOT_DUPLICATES_JSON = "not_duplicates.json"
MORE_LIKE_THIS = 8  # neighbours `neighbours` returns by default: one row of Curate's gallery


def _unit_centred(vectors: np.ndarray) -> np.ndarray:
    v = vectors.astype(np.float32) - vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def nearest(
    vectors: np.ndarray, m: int = CANDIDATES, block: int = BLOCK_ROWS, cancel: threading.Event | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `m` most cosine-similar other rows: (indices, similarities), n x m each, most similar first.
    Computed `block` rows at a time, so memory grows with n, not n squared. `vectors` must be unit length."""
    n = len(vectors)
    m = max(0, min(m, n - 1))
    idx = np.zeros((n, m), dtype=np.int64)
    sims = np.zeros((n, m), dtype=np.float32)
    if m == 0:
        return idx, sims
    for lo in range(0, n, block):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("the look-alike search was cancelled")
        hi = min(lo + block, n)
        s = vectors[lo:hi] @ vectors.T
        s[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf  # not its own neighbour
        np.negative(s, out=s)  # in place: argpartition finds the smallest
        top = np.argpartition(s, m - 1, axis=1)[:, :m]
        top_s = -np.take_along_axis(s, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        idx[lo:hi] = np.take_along_axis(top, order, axis=1)
        sims[lo:hi] = np.take_along_axis(top_s, order, axis=1)
    return idx, sims


def usual_similarity(sims: np.ndarray) -> np.ndarray:
    """Each image's usual similarity, from its neighbours' similarities (n x m, most similar first): the mean over
    NEIGHBOURS neighbours after its copies. Its copies are its nearest neighbours at COPY_SIMILARITY or more (at
    most MAX_COPIES); the very nearest is skipped in any case (it may be a copy too faint to be that close). So a
    photo saved four times over is not made to look ordinary by its own copies, while a burst of different shots
    of one scene (less alike than that) still is."""
    n, m = sims.shape
    if m < 2:
        return np.zeros(n, dtype=np.float32)
    span = min(MAX_COPIES, m - 1)
    close = np.cumprod(sims[:, :span] >= COPY_SIMILARITY, axis=1).sum(axis=1)  # leading neighbours that close
    skip = np.maximum(close, 1)
    cols = skip[:, None] + np.arange(NEIGHBOURS)[None, :]
    valid = cols < m
    picked = np.take_along_axis(sims, np.minimum(cols, m - 1), axis=1)
    return (np.where(valid, picked, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)).astype(np.float32)


def _scores(vectors: np.ndarray, cancel: threading.Event | None = None) -> tuple[list[tuple[int, int, float]], Callable]:
    """`scored_pairs`' list, and a function giving the score of any pair (i, j) on the same scale."""
    n = len(vectors)
    if n < 2:
        return [], lambda i, j: 0.0
    unit = _unit_centred(vectors)
    idx, sims = nearest(unit, cancel=cancel)
    rows = np.repeat(np.arange(n), idx.shape[1])
    a, b = np.minimum(rows, idx.ravel()), np.maximum(rows, idx.ravel())
    keys, first = np.unique(a * n + b, return_index=True)
    a, b, cos = keys // n, keys % n, sims.ravel()[first]
    usual = usual_similarity(sims)
    score = cos - (usual[a] + usual[b]) / 2
    order = np.lexsort((b, a, -score))
    scored = [(int(a[o]), int(b[o]), float(score[o])) for o in order]
    return scored, lambda i, j: float(unit[i] @ unit[j] - (usual[i] + usual[j]) / 2)


def scored_pairs(vectors: np.ndarray, cancel: threading.Event | None = None) -> list[tuple[int, int, float]]:
    """(i, j, score) with i < j for every pair where one is among the other's CANDIDATES nearest neighbours, highest
    score first. score = cos(i, j) - (r_i + r_j) / 2, where r is an image's usual similarity (`usual_similarity`).

    No pair that reaches a positive score is missed: r_j is a mean of similarities in j's candidate list, so
    cos(i, j) > r_j puts i in that list."""
    return _scores(vectors, cancel)[0]


def hash_pairs(
    codes: np.ndarray, max_bits: int = MAX_HASH_BITS, block: int = BLOCK_ROWS, cancel: threading.Event | None = None
) -> list[tuple[int, int, int]]:
    """(i, j, bits) with i < j for every pair of 64-bit hashes (`codes`, uint64) that differ in at most `max_bits`
    bits, fewest first. Compared `block` rows at a time, so memory grows with n, not n squared."""
    codes = np.asarray(codes, dtype=np.uint64)
    n = len(codes) if max_bits >= 0 else 0
    found: list[tuple[int, int, int]] = []
    for lo in range(0, n, block):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("the look-alike search was cancelled")
        hi = min(lo + block, n)
        bits = np.bitwise_count(codes[lo:hi, None] ^ codes[None, :])
        i, j = np.nonzero(bits <= max_bits)
        keep = j > i + lo
        found += [(int(a + lo), int(b), int(bits[a, b])) for a, b in zip(i[keep], j[keep])]
    return sorted(found, key=lambda p: (p[2], p[0], p[1]))


# ------------------------------------------------------------------------------------- "not a duplicate"


def _not_duplicates_path(data_dir: os.PathLike | str) -> Path:
    return state_dir(data_dir) / NOT_DUPLICATES_JSON


def not_duplicates(data_dir: os.PathLike | str) -> set[frozenset[str]]:
    """Content-hash pairs the user said are not duplicates."""
    path = _not_duplicates_path(data_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as ex:
        raise dataset.DatasetError(f"{path} is unreadable ({ex}); delete it to forget the pairs marked 'not a duplicate'") from ex
    return {frozenset(p["sha256"]) for p in data.get("pairs", []) if isinstance(p, dict) and len(p.get("sha256", ())) == 2}


def mark_not_duplicate(data_dir: os.PathLike | str, a: str, b: str) -> None:
    """Remember that images `a` and `b` (class/file) are different photos, by their content: they are not
    grouped or listed as look-alikes again (moving or renaming them does not matter; editing them does)."""
    data_dir = Path(data_dir)
    pa, pb = dataset.resolve_image(data_dir, a), dataset.resolve_image(data_dir, b)
    pair = sorted([manifest.sha256_file(pa), manifest.sha256_file(pb)])
    with manifest.locked(data_dir):
        path = _not_duplicates_path(data_dir)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        pairs = [p for p in data.get("pairs", []) if isinstance(p, dict) and sorted(p.get("sha256", ())) != pair]
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        pairs.append({"sha256": pair, "images": [dataset.rel(data_dir, pa), dataset.rel(data_dir, pb)], "time": when})
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"pairs": pairs}, indent=1))
        os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ look-alikes


def _representatives(emb: Embeddings) -> tuple[list[int], dict[str, list[str]]]:
    """Indices into `emb` of one image per distinct content (its first), and every content's images."""
    by_sha: dict[str, list[str]] = defaultdict(list)
    for image, sha in emb.hashes.items():
        by_sha[sha].append(image)
    seen, reps = set(), []
    for i, sha in enumerate(emb.sha256):
        if sha not in seen:
            seen.add(sha)
            reps.append(i)
    return reps, by_sha


def pairs(
    emb: Embeddings,
    data_dir: os.PathLike | str | None = None,
    threshold: float = NEAR_SCORE,
    cancel: threading.Event | None = None,
    max_hash_bits: int = MAX_HASH_BITS,
) -> list[dict]:
    """The candidate pairs of distinct contents, highest score first: {"a", "b" (class/file), "score", "hash_bits"
    (how many bits their perceptual hashes differ in when at most `max_hash_bits`, else None), "lookalike" (score >=
    threshold, or hash_bits not None)}; without those marked "not a duplicate" in `data_dir`. The candidates are
    the pairs `scored_pairs` finds and those `hash_pairs` finds (pass `max_hash_bits` -1 for none)."""
    reps, _ = _representatives(emb)
    skip = not_duplicates(data_dir) if data_dir is not None else set()
    scored, score_of = _scores(emb.vectors[reps], cancel=cancel)
    hashed = [k for k, r in enumerate(reps) if emb.sha256[r] in emb.phash]
    codes = np.array([emb.phash[emb.sha256[reps[k]]] for k in hashed], dtype=np.uint64)
    close = {(hashed[i], hashed[j]): bits for i, j, bits in hash_pairs(codes, max_hash_bits, cancel=cancel)}
    scores = {(i, j): score for i, j, score in scored}
    scores |= {pair: score_of(*pair) for pair in close if pair not in scores}
    out = []
    for (i, j), score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])):
        a, b = reps[i], reps[j]
        if frozenset((emb.sha256[a], emb.sha256[b])) in skip:
            continue
        bits = close.get((i, j))
        lookalike = score >= threshold or bits is not None
        out.append({"a": emb.images[a], "b": emb.images[b], "score": round(score, 4), "hash_bits": bits, "lookalike": lookalike})
    return out


def groups(
    emb: Embeddings,
    data_dir: os.PathLike | str | None = None,
    threshold: float = NEAR_SCORE,
    max_hash_bits: int = MAX_HASH_BITS,
) -> dict[str, list[list[str]]]:
    """{"exact": groups of byte-identical images, "near": groups of look-alikes (one image per distinct content,
    exact copies excluded)}; every group sorted, the first is the one to keep."""
    _, by_sha = _representatives(emb)
    exact = sorted(sorted(g) for g in by_sha.values() if len(g) > 1)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs(emb, data_dir, threshold, max_hash_bits=max_hash_bits):
        if p["lookalike"]:
            parent[find(p["a"])] = find(p["b"])
    near_by: dict[str, list[str]] = defaultdict(list)
    for x in parent:
        near_by[find(x)].append(x)
    near = sorted(sorted(g) for g in near_by.values() if len(g) > 1)
    return {"exact": exact, "near": near}


def neighbours(emb: Embeddings, image: str, k: int = MORE_LIKE_THIS) -> list[dict]:
    """ "More like this": the `k` images of the data set most like `image` (class/file), most similar first, as
    {"image", "class", "similarity"}. The similarity is the cosine of the embeddings centred on the data set's mean
    (what the look-alike score starts from): 1.0 for the same bytes or a mirror image; in the sample photos,
    versions of one photo 0.86-0.98, an image's nearest different photo 0.45 (0.67 at the 90th centile). [] when
    `image` has no embedding (not computed yet, or unreadable)."""
    try:
        i = emb.images.index(image)
    except ValueError:
        return []
    unit = _unit_centred(emb.vectors)
    sims = unit @ unit[i]
    sims[i] = -np.inf
    order = np.argsort(-sims, kind="stable")[: max(0, min(k, len(sims) - 1))]
    return [
        {"image": emb.images[j], "class": emb.images[j].split("/", 1)[0], "similarity": round(float(sims[j]), 4)} for j in order
    ]


def find_duplicates(
    data_dir: os.PathLike | str,
    *,
    threshold: float = NEAR_SCORE,
    progress: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, list[list[str]]]:
    """Exact copies and look-alikes of a data folder (see `groups`), computing the embeddings it lacks."""
    return groups(embed_folder(data_dir, progress=progress, cancel=cancel), data_dir, threshold)


class LookalikeJob(BackgroundJob):
    """Computes the data set's missing embeddings in the background (progress in `events`, cancellable), so
    Curate › Duplicates can list look-alikes; one job of any kind at a time, like training and audits."""

    kind, noun = "look-alike search", "a look-alike search"
    cancelled_message = "look-alike search cancelled; the embeddings computed so far are kept"

    def __init__(self, data_dir: os.PathLike | str, on_done: Callable[[LookalikeJob], None] | None = None):
        super().__init__(on_done)
        self.data_dir = Path(data_dir)

    def work(self) -> Embeddings:
        return embed_folder(self.data_dir, progress=self.events.append, cancel=self._cancel)
