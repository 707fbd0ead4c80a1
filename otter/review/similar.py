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

The nearest-neighbour search is faiss's (exact up to EXACT_LIMIT distinct images; above, an inverted file of
PCA-reduced vectors whose finds are re-ranked exactly, `_index`), a block of query rows at a time, so memory grows
with n, not n squared; only each image's nearest CANDIDATES neighbours are kept, which holds every pair that can
reach the threshold (see `scored_pairs`; above EXACT_LIMIT, those the approximate search finds). The pHash pairs
come from faiss's binary range search, the groups from SciPy's connected components. The candidate pairs are
computed once per content of the data set and kept (`candidates`): moving or renaming images keeps them.
Pairs the user marked "not a duplicate" are remembered by content hash in `<data>/.otter/not_duplicates.json`
and never grouped again.
"""

from __future__ import annotations

import hashlib
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
SEARCH_ROWS = 2048  # query rows per faiss search (results 2,048 x 13), and a look at the cancel flag between them
EXACT_LIMIT = 10_000  # distinct images up to which the neighbour search is exact; above, approximate (`_index`)
REDUCED_DIM = 128  # dimensions the approximate search clusters and scans in (PCA); the found ones are re-ranked exactly
PCA_ROWS = 10_000  # vectors the principal components are computed from
LISTS = 4  # clusters of the approximate search: LISTS x sqrt(n)
PROBE_SHARE = 0.1  # share of the clusters each query looks in (at 100,000: 127 of 1,264; 32 of them, and REFINE 3,
# added 46 groups of different photos to the 1,000 planted copies, 1.5x faster: bench/runs/48-scale-lookalikes)
REFINE = 8  # the approximate search finds REFINE x as many neighbours as asked, re-ranked by their exact similarity
FORMAT = 2  # of the kept candidates (`candidates`): bump when how they are found changes
NOT_DUPLICATES_JSON = "not_duplicates.json"
MORE_LIKE_THIS = 8  # neighbours `neighbours` returns by default: one row of Curate's gallery


def _unit_centred(vectors: np.ndarray) -> np.ndarray:
    v = vectors.astype(np.float32) - vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def nearest(
    vectors: np.ndarray, m: int = CANDIDATES, block: int = SEARCH_ROWS, cancel: threading.Event | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `m` most cosine-similar other rows: (indices, similarities), n x m each, most similar first.
    `vectors` must be unit length. faiss (inner product) does the search, `block` query rows at a time (memory
    grows with n, not n squared; cancel is looked at between blocks): exact up to EXACT_LIMIT rows, approximate
    above (`_index`). faiss rather than the hand-written blockwise numpy search it replaced: faster at every
    size measured (bench/scale.py), its top-k is a heap instead of a partition of every full row."""
    import faiss

    n = len(vectors)
    m = max(0, min(m, n - 1))
    if m == 0:
        return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = _index(faiss, x)
    idx = np.zeros((n, m), dtype=np.int64)
    sims = np.zeros((n, m), dtype=np.float32)
    for lo in range(0, n, block):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("the look-alike search was cancelled")
        hi = min(lo + block, n)
        d, i = index.search(x[lo:hi], m + 1)
        rows = np.arange(lo, hi)[:, None]
        bad = (i == rows) | (i < 0)  # itself (wherever ties put it), or no result
        d = np.where(bad, -np.inf, d)
        i = np.where(bad, rows, i)
        order = np.argsort(-d, axis=1, kind="stable")[:, :m]
        idx[lo:hi] = np.take_along_axis(i, order, axis=1)
        sims[lo:hi] = np.take_along_axis(d, order, axis=1)
    return idx, sims


def _index(faiss, x: np.ndarray):
    """An exact inner-product index up to EXACT_LIMIT vectors. Above, approximate: the vectors projected on their
    REDUCED_DIM principal components (`_pca`) and clustered (faiss's inverted file of LISTS x sqrt(n) lists, each
    query looking in the PROBE_SHARE nearest), the REFINE x m best found there re-ranked by their exact inner product on
    the full vectors (faiss's IndexRefineFlat), so every similarity returned is exact and only which neighbours are
    found is approximate; copies of one photo sit close together, in one cluster, whatever the projection keeps.
    Measured against the exact search at 20,000 (bench/runs/48-scale-lookalikes): the same look-alike groups, 1.8x
    faster; 92 s at 100,000, every planted copy and no other group (probing 32 lists, re-ranking 3x: 46 more). At
    100,000 the exact search (1.3e13 flops) takes minutes on 2 cores, and an inverted file of the full vectors about
    4 minutes (memory-bound: each query reads its clusters' 1280-d rows)."""
    n, d = x.shape
    if n <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(d)
        index.add(x)
        return index
    lists = max(1, min(int(LISTS * np.sqrt(n)), n // 39))  # faiss's k-means wants 39 training points per cluster
    sample = x[np.random.default_rng(0).choice(n, min(n, lists * 39), replace=False)]
    dim = min(d, REDUCED_DIM)
    # faiss's Python wrappers keep the parts (quantizer, inverted file, transform) alive with the index
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    ivf.nprobe = max(1, int(np.ceil(PROBE_SHARE * lists)))
    base = faiss.IndexPreTransform(_pca(faiss, sample, dim), ivf) if dim < d else ivf
    index = faiss.IndexRefineFlat(base)
    index.k_factor = REFINE
    index.train(sample)
    index.add(x)
    return index


def _pca(faiss, sample: np.ndarray, dim: int):
    """A faiss transform projecting on the `dim` principal components of (at most PCA_ROWS rows of) `sample`, found
    with numpy's eigensolver on one BLAS thread. Not faiss's PCAMatrix: its LAPACK call took 17-36 s for 1280
    dimensions on this busy 2-core machine; numpy's eigh 1.9 s on one thread, 7-26 s on two threads (oversubscribed
    cores stall a threaded eigensolver at every step)."""
    from threadpoolctl import threadpool_limits

    rows = sample[:PCA_ROWS]
    mean = rows.mean(axis=0, dtype=np.float64)
    centred = (rows - mean).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        _, vecs = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    top = np.ascontiguousarray(vecs[:, ::-1][:, :dim].T, dtype=np.float32)  # dim x d, largest first
    transform = faiss.LinearTransform(sample.shape[1], dim, True)
    faiss.copy_array_to_vector(top.ravel(), transform.A)
    faiss.copy_array_to_vector((-top @ mean).astype(np.float32), transform.b)
    transform.is_trained = True
    return transform


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


def _score_arrays(vectors: np.ndarray, cancel: threading.Event | None = None):
    """(a, b, score) arrays of `scored_pairs`' pairs in its order, and a function scoring any pairs (arrays i, j)
    on the same scale."""
    n = len(vectors)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0), lambda i, j: np.zeros(len(i))
    unit = _unit_centred(vectors)
    idx, sims = nearest(unit, cancel=cancel)
    rows = np.repeat(np.arange(n), idx.shape[1])
    a, b = np.minimum(rows, idx.ravel()), np.maximum(rows, idx.ravel())
    distinct = a != b  # not itself (an approximate search may return too few neighbours)
    a, b, sims_flat = a[distinct], b[distinct], sims.ravel()[distinct]
    keys, first = np.unique(a * n + b, return_index=True)
    a, b, cos = keys // n, keys % n, sims_flat[first]
    usual = usual_similarity(sims)
    score = (cos - (usual[a] + usual[b]) / 2).astype(np.float64)
    order = np.lexsort((b, a, -score))

    def score_of(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", unit[i], unit[j]).astype(np.float64) - (usual[i] + usual[j]) / 2

    return a[order], b[order], score[order], score_of


def _scores(vectors: np.ndarray, cancel: threading.Event | None = None) -> tuple[list[tuple[int, int, float]], Callable]:
    """`scored_pairs`' list, and a function giving the score of any pair (i, j) on the same scale."""
    a, b, score, score_of = _score_arrays(vectors, cancel)
    scored = [(int(x), int(y), float(z)) for x, y, z in zip(a, b, score)]
    return scored, lambda i, j: float(score_of(np.array([i]), np.array([j]))[0])


def scored_pairs(vectors: np.ndarray, cancel: threading.Event | None = None) -> list[tuple[int, int, float]]:
    """(i, j, score) with i < j for every pair where one is among the other's CANDIDATES nearest neighbours, highest
    score first. score = cos(i, j) - (r_i + r_j) / 2, where r is an image's usual similarity (`usual_similarity`).

    No pair that reaches a positive score is missed: r_j is a mean of similarities in j's candidate list, so
    cos(i, j) > r_j puts i in that list."""
    return _scores(vectors, cancel)[0]


def hash_pairs(
    codes: np.ndarray, max_bits: int = MAX_HASH_BITS, block: int = SEARCH_ROWS, cancel: threading.Event | None = None
) -> list[tuple[int, int, int]]:
    """(i, j, bits) with i < j for every pair of 64-bit hashes (`codes`, uint64) that differ in at most `max_bits`
    bits, fewest first. faiss's binary index's range search, `block` query rows at a time: about 10x faster than
    the numpy XOR-and-count it replaced (0.37 s against 3.5 s at 20,000), memory growing with n, not n squared."""
    import faiss

    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    n = len(codes) if max_bits >= 0 else 0
    if n < 2:
        return []
    as_bytes = codes.view(np.uint8).reshape(n, 8)
    index = faiss.IndexBinaryFlat(64)
    index.add(as_bytes)
    found: list[tuple[int, int, int]] = []
    for lo in range(0, n, block):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("the look-alike search was cancelled")
        hi = min(lo + block, n)
        lims, dist, ids = index.range_search(as_bytes[lo:hi], max_bits + 1)  # distance < radius
        rows = np.repeat(np.arange(lo, hi), np.diff(lims.astype(np.int64)))
        keep = ids > rows
        found += [(int(a), int(b), int(c)) for a, b, c in zip(rows[keep], ids[keep], dist[keep])]
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
    """Indices into `emb` of one image per distinct content (its first), and every content's images (worked out
    once per `Embeddings`: a view asks three times)."""
    memo = emb.__dict__.get("_representatives")
    if memo is None:
        memo = emb.__dict__["_representatives"] = _find_representatives(emb)
    return memo


def _find_representatives(emb: Embeddings) -> tuple[list[int], dict[str, list[str]]]:
    by_sha: dict[str, list[str]] = defaultdict(list)
    for image, sha in emb.hashes.items():
        by_sha[sha].append(image)
    seen, reps = set(), []
    for i, sha in enumerate(emb.sha256):
        if sha not in seen:
            seen.add(sha)
            reps.append(i)
    return reps, by_sha


LOOKALIKES_DIR = Path(".otter") / "lookalikes"  # the candidate pairs, kept per content of the data set
_kept: dict[str, dict[str, np.ndarray]] = {}  # key -> candidates, this process's copy (the last few)
_kept_lock = threading.Lock()


def _content_key(shas: list[str], hashed: list[bool], max_hash_bits: int) -> str:
    """What the candidate pairs depend on: the distinct contents (in order), which have a perceptual hash, and
    the settings. Moving or renaming images keeps it; adding, trashing or editing one changes it."""
    h = hashlib.sha256(
        json.dumps(
            [
                FORMAT,
                CANDIDATES,
                NEIGHBOURS,
                COPY_SIMILARITY,
                MAX_COPIES,
                EXACT_LIMIT,
                REDUCED_DIM,
                LISTS,
                PROBE_SHARE,
                REFINE,
                max_hash_bits,
            ]
        ).encode()
    )
    h.update("".join(sha + "01"[has] for sha, has in zip(shas, hashed)).encode())
    return h.hexdigest()[:24]


def _compute_candidates(emb: Embeddings, reps: list[int], max_hash_bits: int, cancel) -> dict[str, np.ndarray]:
    """The candidate pairs as arrays over `reps`' positions: a < b, score, bits (-1: hashes not close), highest
    score first (ties by a, b). In numpy throughout: at 100,000 images there are over a million."""
    n = len(reps)
    a, b, score, score_of = _score_arrays(emb.vectors[reps], cancel=cancel)
    hashed = np.array([k for k, r in enumerate(reps) if emb.sha256[r] in emb.phash], dtype=np.int64)
    codes = np.array([emb.phash[emb.sha256[reps[k]]] for k in hashed], dtype=np.uint64)
    close = np.array(hash_pairs(codes, max_hash_bits, cancel=cancel), dtype=np.int64).reshape(-1, 3)
    ha, hb, hbits = hashed[close[:, 0]], hashed[close[:, 1]], close[:, 2]
    keys, hkeys = a * n + b, ha * n + hb
    extra = ~np.isin(hkeys, keys)  # close hashes the neighbour search did not list: scored here
    a = np.concatenate([a, ha[extra]])
    b = np.concatenate([b, hb[extra]])
    score = np.concatenate([score, score_of(ha[extra], hb[extra])])
    bits = np.full(len(a), -1, dtype=np.int64)
    if len(hkeys):
        all_keys = a * n + b
        sorter = np.argsort(all_keys, kind="stable")
        bits[sorter[np.searchsorted(all_keys[sorter], hkeys)]] = hbits
    order = np.lexsort((b, a, -score))
    return {"a": a[order], "b": b[order], "score": np.round(score[order], 4), "bits": bits[order]}


def candidates(
    emb: Embeddings,
    data_dir: os.PathLike | str | None = None,
    cancel: threading.Event | None = None,
    max_hash_bits: int = MAX_HASH_BITS,
) -> tuple[list[int], dict[str, np.ndarray]]:
    """(reps: one image per distinct content, as indices into `emb`, in the order of their SHA-256; the candidate
    pairs as arrays over reps' positions: "a" < "b", "score", "bits"), highest score first, without the pairs
    marked "not a duplicate" in `data_dir`. Searched once per content of the data set and kept (in this process and
    in `<data>/.otter/lookalikes/`, plain arrays), so a view after a move or a restart costs a look-up; after
    photos were trashed (or restored, of those the search saw) the kept pairs among the rest are used as they scored
    then; only new contents make a new search."""
    memo = emb.__dict__.setdefault("_content", {})  # worked out once per `Embeddings` (a view asks twice)
    if max_hash_bits not in memo:
        first, _ = _representatives(emb)
        rep_of = {emb.sha256[r]: r for r in first}
        shas = sorted(rep_of)  # by content, not by name: moving or renaming photos keeps the order, and the key
        memo[max_hash_bits] = (
            shas,
            [rep_of[sha] for sha in shas],
            _content_key(shas, [s in emb.phash for s in shas], max_hash_bits),
        )
    shas, reps, key = memo[max_hash_bits]
    with _kept_lock:
        found = _kept.get(key)
        searched = [v for v in _kept.values() if v.get("searched") is not None]
    folder = Path(data_dir) / LOOKALIKES_DIR if data_dir is not None else None
    if found is None and folder is not None:
        searched += [f for f in map(_load, sorted(folder.glob("*.npz"))) if f is not None]
        found = next((f for f in searched if f["key"] == key), None)
    if found is None:  # photos trashed since a search (or restored, of those it saw): its pairs among the rest
        found = next((d for d in (_derive(f, shas) for f in searched if f["bits_setting"] == max_hash_bits) if d), None)
    if found is None:
        found = _compute_candidates(emb, reps, max_hash_bits, cancel)
        found |= {"shas": np.array(shas), "key": key, "searched": True, "bits_setting": max_hash_bits}
        if folder is not None:
            _keep_on_disk(folder / f"{key}.npz", found)
    with _kept_lock:
        _kept[key] = found
        while len(_kept) > 4:
            _kept.pop(next(iter(_kept)))
    skip = not_duplicates(data_dir) if data_dir is not None else set()
    if skip:
        keep = np.array([frozenset((shas[a], shas[b])) not in skip for a, b in zip(found["a"], found["b"])], dtype=bool)
        found = {k: found[k][keep] for k in ("a", "b", "score", "bits")}
    return reps, found


def _load(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in ("a", "b", "score", "bits", "shas")}
            out |= {"key": path.stem, "searched": True, "bits_setting": int(z["bits_setting"])}
            return out
    except (OSError, ValueError, KeyError):
        return None


def _derive(searched: dict, shas: list[str]) -> dict | None:
    """The candidates among `shas` from a search over a superset of them (None if it is not one): the pairs of
    photos still there, as they scored then. Trashing photos, or restoring some, searches nothing again."""
    pos = {sha: i for i, sha in enumerate(searched["shas"].tolist())}
    if len(shas) > len(pos) or any(sha not in pos for sha in shas):
        return None
    remap = np.full(len(pos), -1, dtype=np.int64)
    remap[[pos[sha] for sha in shas]] = np.arange(len(shas))  # both in SHA-256 order: a < b and ties keep their order
    a, b = remap[searched["a"]], remap[searched["b"]]
    keep = (a >= 0) & (b >= 0)
    return {"a": a[keep], "b": b[keep], "score": searched["score"][keep], "bits": searched["bits"][keep], "searched": None}


def _keep_on_disk(path: Path, found: dict) -> None:
    """Write a search's candidates atomically and drop those of earlier searches; a read-only folder only loses them."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
        arrays = {k: found[k] for k in ("a", "b", "score", "bits", "shas")}
        np.savez(tmp, **arrays, bits_setting=np.array(found["bits_setting"]))
        os.replace(tmp, path)
        for old in path.parent.glob("*.npz"):
            if old != path and not old.name.startswith("."):
                old.unlink(missing_ok=True)
    except OSError:
        pass


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
    reps, c = candidates(emb, data_dir, cancel, max_hash_bits)
    return [
        {
            "a": emb.images[reps[a]],
            "b": emb.images[reps[b]],
            "score": float(s),
            "hash_bits": int(bits) if bits >= 0 else None,
            "lookalike": bool(s >= threshold or bits >= 0),
        }
        for a, b, s, bits in zip(c["a"], c["b"], c["score"], c["bits"])
    ]


def top_pairs(
    emb: Embeddings, data_dir: os.PathLike | str | None = None, limit: int = 100, threshold: float = NEAR_SCORE
) -> list[dict]:
    """`pairs`' first `limit` in the order Curate › Duplicates lists them (look-alikes first, then pairs filed under
    different classes, then the highest score), made without building every pair."""
    reps, c = candidates(emb, data_dir)
    if not len(c["a"]):
        return []
    labels = np.array([emb.images[r].split("/", 1)[0] for r in reps], dtype=object)
    look = (c["score"] >= threshold) | (c["bits"] >= 0)
    same = labels[c["a"]] == labels[c["b"]]
    order = np.lexsort((-c["score"], same, ~look))[:limit]
    return [
        {
            "a": emb.images[reps[c["a"][k]]],
            "b": emb.images[reps[c["b"][k]]],
            "score": float(c["score"][k]),
            "hash_bits": int(c["bits"][k]) if c["bits"][k] >= 0 else None,
            "lookalike": bool(look[k]),
        }
        for k in order
    ]


def groups(
    emb: Embeddings,
    data_dir: os.PathLike | str | None = None,
    threshold: float = NEAR_SCORE,
    max_hash_bits: int = MAX_HASH_BITS,
) -> dict[str, list[list[str]]]:
    """{"exact": groups of byte-identical images, "near": groups of look-alikes (one image per distinct content,
    exact copies excluded)}; every group sorted, the first is the one to keep. The look-alike groups are SciPy's
    connected components of the look-alike pairs (it replaced a hand-written union-find)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    reps, by_sha = _representatives(emb)
    exact = sorted(sorted(g) for g in by_sha.values() if len(g) > 1)
    reps, c = candidates(emb, data_dir, max_hash_bits=max_hash_bits)
    look = (c["score"] >= threshold) | (c["bits"] >= 0)
    a, b = c["a"][look], c["b"][look]
    if not len(a):
        return {"exact": exact, "near": []}
    n = len(reps)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    members = np.unique(np.concatenate([a, b]))
    near_by: dict[int, list[str]] = defaultdict(list)
    for k in members:
        near_by[int(label[k])].append(emb.images[reps[k]])
    near = sorted(sorted(g) for g in near_by.values() if len(g) > 1)
    return {"exact": exact, "near": near}


_units: dict[str, np.ndarray] = {}  # content key -> centred unit vectors (the last data set's), for "More like this"


def _unit_of(emb: Embeddings) -> np.ndarray:
    key = hashlib.sha256("".join(emb.sha256).encode()).hexdigest()
    with _kept_lock:
        unit = _units.get(key)
    if unit is None:
        unit = _unit_centred(emb.vectors)
        with _kept_lock:
            _units.clear()
            _units[key] = unit
    return unit


def neighbours(emb: Embeddings, image: str, k: int = MORE_LIKE_THIS) -> list[dict]:
    """ "More like this": the `k` images of the data set most like `image` (class/file), most similar first, as
    {"image", "class", "similarity"}. The similarity is the cosine of the embeddings centred on the data set's mean
    (what the look-alike score starts from): 1.0 for the same bytes or a mirror image; in the sample photos,
    versions of one photo 0.86-0.98, an image's nearest different photo 0.45 (0.67 at the 90th centile). [] when
    `image` has no embedding (not computed yet, or unreadable). The centred vectors are kept per content."""
    try:
        i = emb.images.index(image)
    except ValueError:
        return []
    unit = _unit_of(emb)
    sims = unit @ unit[i]
    sims[i] = -np.inf
    k = max(0, min(k, len(sims) - 1))
    top = np.argpartition(-sims, k)[:k] if 0 < k < len(sims) else np.arange(len(sims))[:k]
    order = top[np.lexsort((top, -sims[top]))]
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
