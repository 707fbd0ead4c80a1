"""Public image data sets that ship inside packages, written as folder-per-class data sets for `otter train`.

    python bench/public_sets.py digits /tmp/digits --train-per-class 60 --test-per-class 40 --size 32

`digits`: scikit-learn's `load_digits` (1,797 handwritten digits, 10 classes, 8x8 grayscale, 16 grey levels),
upscaled to `size` px (bilinear) and written as 8-bit grayscale PNGs. The first `train_per_class` of each class
(after a seeded shuffle) go to `<out>/train/<class>/`, the next `test_per_class` to `<out>/test/<class>/`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def digits(out: Path, train_per_class: int = 60, test_per_class: int = 40, size: int = 32, seed: int = 0) -> dict:
    """Write the digits set; returns {"train": [(path, label)], "test": [...], "pixels": {split: (x, y)}}."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    rows = {"train": [], "test": []}
    pixels = {"train": ([], []), "test": ([], [])}
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(d.target == label))
        for split, chosen in (
            ("train", idx[:train_per_class]),
            ("test", idx[train_per_class : train_per_class + test_per_class]),
        ):
            folder = out / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                im = Image.fromarray((d.images[i] * (255 / 16)).round().astype(np.uint8), "L").resize(
                    (size, size), Image.BILINEAR
                )
                path = folder / f"d{i:04d}.png"
                im.save(path)
                rows[split].append((path, str(label)))
                pixels[split][0].append(d.data[i])
                pixels[split][1].append(label)
    return {**rows, "pixels": {k: (np.array(x), np.array(y)) for k, (x, y) in pixels.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=["digits"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--train-per-class", type=int, default=60)
    ap.add_argument("--test-per-class", type=int, default=40)
    ap.add_argument("--size", type=int, default=32)
    a = ap.parse_args()
    r = digits(a.out, a.train_per_class, a.test_per_class, a.size)
    print(f"{len(r['train'])} training and {len(r['test'])} test pictures under {a.out}")


if __name__ == "__main__":
    main()
