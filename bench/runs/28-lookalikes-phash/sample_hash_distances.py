"""How far apart are the sample photos' perceptual hashes? The closest pairs among all photos of a data set.

    python bench/runs/28-lookalikes-phash/sample_hash_distances.py [--data ../shared/otters] [--max-bits 14]

Hashes every photo with `otter.review.perceptual.image_phash` (imagehash's 64-bit pHash) and lists every pair within
--max-bits bits, fewest first (`otter.review.similar.hash_pairs`). Seconds on 245 photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]  # the repository root
sys.path.insert(0, str(ROOT))


def main() -> None:
    from otter.data import dataset
    from otter.review import similar
    from otter.review.perceptual import image_phash

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--max-bits", type=int, default=14)
    args = ap.parse_args()
    images = dataset.list_images(args.data)
    codes = np.array([image_phash(p) for p in images], dtype=np.uint64)
    print(f"{len(images)} photos")
    for i, j, bits in similar.hash_pairs(codes, max_bits=args.max_bits):
        print(f"{bits:3d} bits  {dataset.rel(args.data, images[i])}  {dataset.rel(args.data, images[j])}")


if __name__ == "__main__":
    main()
