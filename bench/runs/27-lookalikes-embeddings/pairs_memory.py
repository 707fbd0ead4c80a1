"""Time and peak memory of the look-alike search on many random vectors (`otter.review.similar.scored_pairs`).

    python bench/runs/27-lookalikes-embeddings/pairs_memory.py [--n 20000] [--dim 1280] [--seed 1]

Peak memory is Python's traced allocations (tracemalloc: numpy's arrays included) during the search, so the
vectors themselves, made before, are not counted. Random vectors stand in for embeddings: the search's cost does not
depend on what they hold.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]  # the repository root
sys.path.insert(0, str(ROOT))


def main() -> None:
    from otter.review import similar

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    vectors = np.random.default_rng(args.seed).normal(size=(args.n, args.dim)).astype(np.float32)
    load = os.getloadavg()[0]
    tracemalloc.start()
    t = time.perf_counter()
    pairs = similar.scored_pairs(vectors)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"{args.n} x {args.dim} vectors ({vectors.nbytes / 1e6:.0f} MB): {len(pairs)} pairs scored in {seconds:.1f} s, "
        f"peak {peak / 1e6:.0f} MB traced besides the vectors (load average {load:.1f} before)"
    )


if __name__ == "__main__":
    main()
