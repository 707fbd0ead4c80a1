"""Each image's nearest neighbours among the embeddings, by cosine similarity: the search under the look-alikes
(`otter.review.similar`). faiss does it: exact up to EXACT_LIMIT images; above, an inverted file of PCA-reduced
vectors whose finds are re-ranked exactly on the full vectors (`_index`). Measured: bench/runs/48-scale-lookalikes."""

from __future__ import annotations

import threading

import numpy as np

from ..model.jobs import TrainingCancelled

CANDIDATES = 12  # neighbours kept per image (>= similar's MAX_COPIES + 1 + NEIGHBOURS); pairs are looked for among them
SEARCH_ROWS = 2048  # query rows per faiss search (results 2,048 x 13), and a look at the cancel flag between them
EXACT_LIMIT = 10_000  # distinct images up to which the neighbour search is exact; above, approximate (`_index`)
REDUCED_DIM = 128  # dimensions the approximate search clusters and scans in (PCA); the found ones are re-ranked exactly
PCA_ROWS = 10_000  # vectors the principal components are computed from
LISTS = 4  # clusters of the approximate search: LISTS x sqrt(n)
PROBE_SHARE = 0.1  # share of the clusters each query looks in (at 100,000: 127 of 1,264; 32 of them, and REFINE 3,
# added 46 groups of different photos to the 1,000 planted copies, 1.5x faster: bench/runs/48-scale-lookalikes)
REFINE = 8  # the approximate search finds REFINE x as many neighbours as asked, re-ranked by their exact similarity


def unit_centred(vectors: np.ndarray) -> np.ndarray:
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
