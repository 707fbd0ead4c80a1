"""Training's image loading: the cache of resized images is bounded (images past it are decoded again, from disk),
the lazy list of resized images does not hold them, and the DataLoaders decode in worker processes when asked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from otter.model import loading
from otter.model.recipes import TrainConfig


def _photos(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        cls = folder / ("river" if i % 2 else "sea")
        cls.mkdir(parents=True, exist_ok=True)
        out.append(cls / f"p{i}.png")
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(out[-1])
    return out


def test_the_resized_image_cache_is_bounded(tmp_path, monkeypatch):
    paths = _photos(tmp_path, 10)
    loading.clear_cache()
    monkeypatch.setattr(loading, "CACHE_BYTES", 3 * 32 * 32 * 3)  # room for three 32 px images
    try:
        images = loading.ResizedImages(paths, 32)
        got = images[:] + [images[9]]
        assert len(images) == 10 and all(im.size == (32, 32) for im in got)
        assert len(loading._resized) == 3 and loading._resized_bytes <= loading.CACHE_BYTES
        assert images[9] is not got[-1]  # past the bound: decoded again, not kept
        assert images[0] is got[0]  # the first ones seen stay
        assert np.array_equal(np.asarray(images[9]), np.asarray(got[-1]))
    finally:
        loading.clear_cache()


def test_training_images_decode_in_worker_processes(tmp_path, monkeypatch):
    paths = _photos(tmp_path / "data", 8)
    seen = tmp_path / "pids"
    seen.mkdir()
    load = loading.load_training_image

    def load_and_note(path, size):
        (seen / str(os.getpid())).touch()
        return load(path, size)

    monkeypatch.setattr(loading, "load_training_image", load_and_note)
    monkeypatch.setattr(loading, "LOADER_WORKERS", 2)
    dls = loading.make_dataloaders(paths, [p.parent.name for p in paths], ["river", "sea"], [0, 1], 32, TrainConfig(bs=2))
    batches = list(dls.train)
    assert dls.train.fake_l.num_workers == 2 and len(batches) == 3
    assert all(tuple(xb.shape) == (2, 3, 32, 32) and len(yb) == 2 for xb, yb in batches)
    assert {p.name for p in seen.iterdir()} - {str(os.getpid())}  # decoded in other processes
