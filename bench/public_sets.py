"""Public image data sets that ship inside packages, written as folder-per-class data sets for `otter train`.

    python bench/public_sets.py digits /tmp/digits --train-per-class 60 --test-per-class 40 --size 32

`digits`: scikit-learn's `load_digits` (1,797 handwritten digits, 10 classes, 8x8 grayscale, 16 grey levels),
upscaled to `size` px (bilinear) and written as 8-bit grayscale PNGs. The first `train_per_class` of each class
(after a seeded shuffle) go to `<out>/train/<class>/`, the next `test_per_class` to `<out>/test/<class>/`.

`animals`: Animal-MNIST (PyPI `animal-mnist` 0.4, MIT licence; 10,000 28x28 grayscale silhouettes of 10 animals, 1,000
a class), written the same way at their own 28 px unless `size` says otherwise. The wheel is fetched with `pip download`
(the package registry answers here) into `bench/.cache/` and read as a zip file: the package itself is not installed
(it requires TensorFlow). Its arrays are pickles; they are read by an unpickler that accepts nothing but numpy's array
reconstruction (`NumpyOnly`), so a changed file cannot run code.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import subprocess
import sys
import zipfile
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


ANIMALS_WHEEL = "animal-mnist==0.4"
ANIMALS = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]  # its label order
CACHE = Path(__file__).resolve().parent / ".cache"


class NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: any other global in the stream is refused."""

    def find_class(self, module: str, name: str):
        try:
            from numpy._core.multiarray import _reconstruct  # numpy 2
        except ImportError:  # numpy 1
            from numpy.core.multiarray import _reconstruct
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refused {module}.{name}: only numpy arrays are read")
        return allowed[module, name]


def animals_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images n x 28 x 28 uint8, labels n) of Animal-MNIST, from its wheel (downloaded once into bench/.cache)."""
    CACHE.mkdir(exist_ok=True)
    wheels = sorted(CACHE.glob("animal_mnist-0.4-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), ANIMALS_WHEEL]
        subprocess.run(cmd, check=True)
        wheels = sorted(CACHE.glob("animal_mnist-0.4-*.whl"))
    arrays = []
    with zipfile.ZipFile(wheels[0]) as z:
        for name in ("animal_data_version_3.gz", "animal_label_version_3.gz"):
            raw = gzip.decompress(z.read(f"animal_mnist/data/Animal_MNIST/{name}"))
            arrays.append(np.asarray(NumpyOnly(io.BytesIO(raw)).load()))
    x, y = arrays
    return x.reshape(len(x), 28, 28).astype(np.uint8), y.astype(int).ravel()


def animals(out: Path, train_per_class: int = 60, test_per_class: int = 40, size: int = 28, seed: int = 0) -> dict:
    """Write Animal-MNIST like `digits` (class folders named after the animals); same return value, pixels 0..255."""
    x, y = animals_arrays()
    return _write(out, x, y, ANIMALS, train_per_class, test_per_class, size, seed)


def _write(out: Path, images, targets, names, train_per_class, test_per_class, size, seed) -> dict:
    rng = np.random.default_rng(seed)
    rows = {"train": [], "test": []}
    pixels = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(names):
        idx = rng.permutation(np.flatnonzero(targets == label))
        for split, chosen in (
            ("train", idx[:train_per_class]),
            ("test", idx[train_per_class : train_per_class + test_per_class]),
        ):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                im = Image.fromarray(images[i], "L")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                path = folder / f"{name}{i:05d}.png"
                im.save(path)
                rows[split].append((path, name))
                pixels[split][0].append(images[i].ravel().astype(np.float64))
                pixels[split][1].append(label)
    return {**rows, "pixels": {k: (np.array(x), np.array(y)) for k, (x, y) in pixels.items()}}


SETS = {"digits": 8, "animals": 28}  # name: the pictures' own size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=list(SETS))
    ap.add_argument("out", type=Path)
    ap.add_argument("--train-per-class", type=int, default=60)
    ap.add_argument("--test-per-class", type=int, default=40)
    ap.add_argument("--size", type=int, default=32)
    a = ap.parse_args()
    r = (digits if a.name == "digits" else animals)(a.out, a.train_per_class, a.test_per_class, a.size)
    print(f"{len(r['train'])} training and {len(r['test'])} test pictures under {a.out}")


if __name__ == "__main__":
    main()
