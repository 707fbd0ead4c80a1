"""A folder-per-class data set into fastai: collecting the items, the validation split, the DataLoaders, the bounded
cache of resized images, and the synthetic "none of these" images as an extra class."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..data.dataset import list_classes, list_images
from ..data.images import load_image
from . import backbones, distributed
from .jobs import TrainError
from .recipes import MIN_IMAGES_PER_CLASS, TrainConfig
from .run import fastai_vision

_cache_lock = threading.Lock()
_resized: dict[tuple[str, float, int], object] = {}
_resized_bytes = 0
# Resized training images kept in memory between epochs, at most this many bytes ($OTTER_TRAIN_CACHE_MB, default 800
# MB: 5,300 images at 224 px, all of a set that size). Beyond it images are decoded from disk again every epoch, so a
# training's memory does not grow with the data set (bench/runs/48-scale-lookalikes).
CACHE_BYTES = int(float(os.environ.get("OTTER_TRAIN_CACHE_MB", 800)) * 1e6)
# DataLoader worker processes decoding training images ($OTTER_TRAIN_WORKERS). Default 0: in the training process,
# where the cache lives (a worker's cache dies with it at the end of each epoch, so later epochs decode again). One
# cold epoch took 0.73x as long with 2 workers on the busy 2-core machine, too noisy to change the default on
# (bench/runs/48-scale-lookalikes).
LOADER_WORKERS = int(os.environ.get("OTTER_TRAIN_WORKERS", 0))


def load_training_image(path: os.PathLike | str, size: int):
    """Decode and squish-resize once per size and run (cached, up to CACHE_BYTES; the first images seen stay, which
    for epochs that each read every image once is as good as any eviction): on 2 cores, decoding and resizing every
    epoch would cost as much as the model itself. Same operations as `otter.model.preprocess.preprocess`."""
    global _resized_bytes
    key = (str(path), os.path.getmtime(path), int(size))
    with _cache_lock:
        im = _resized.get(key)
    if im is None:
        im = load_image(path).resize((int(size), int(size)), Image.BILINEAR)
        with _cache_lock:
            if key not in _resized and _resized_bytes + size * size * 3 <= CACHE_BYTES:
                _resized[key] = im
                _resized_bytes += size * size * 3
    return im


class ResizedImages(Sequence):
    """`paths` as resized training images (`load_training_image`), decoded when read: a list of images that does
    not hold them all (at 20,000 photos of 224 px that would be 3 GB)."""

    def __init__(self, paths: Sequence[os.PathLike | str], size: int):
        self.paths, self.size = list(paths), int(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [load_training_image(p, self.size) for p in self.paths[i]]
        return load_training_image(self.paths[i], self.size)


def clear_cache() -> None:
    global _resized_bytes
    with _cache_lock:
        _resized.clear()
        _resized_bytes = 0


@functools.cache
def _image_cls():
    fv = fastai_vision()

    class OtterImage(fv.PILImage):
        """fastai's PILImage, opened the way prediction opens images (EXIF, alpha, 16-bit, first frame)."""

    return OtterImage


@functools.cache
def _image_block(size: int):
    """fastai's ImageBlock, but its type transform opens *and resizes* (cached), replacing item_tfms=Resize."""
    fv = fastai_vision()
    cls = _image_cls()

    def open_resized(fn):
        if isinstance(fn, (str, os.PathLike)):
            return cls(load_training_image(fn, size))
        return cls(load_image(fn).resize((size, size), Image.BILINEAR))

    return fv.TransformBlock(type_tfms=open_resized, batch_tfms=fv.IntToFloatTensor)


def collect_items(data_dir: os.PathLike | str) -> tuple[list[Path], list[str], list[str]]:
    """(image paths, labels, classes) of a folder-per-class data set, with clear errors for unusable sets."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise TrainError(
            f"data folder {data_dir} does not exist; collect images in the Curate tab or with `python -m otter scrape`"
        )
    classes = list_classes(data_dir)
    items = list_images(data_dir)
    counts = {c: sum(p.parent.name == c for p in items) for c in classes}
    usable = [c for c, n in counts.items() if n > 0]
    if len(usable) < 2:
        raise TrainError(
            f"need at least two classes with images in {data_dir} (found: {', '.join(f'{c} ({n})' for c, n in counts.items()) or 'none'})"
        )
    few = [f"{c} ({n})" for c, n in counts.items() if 0 < n < MIN_IMAGES_PER_CLASS]
    if few:
        raise TrainError(f"too few images in: {', '.join(few)}; need at least {MIN_IMAGES_PER_CLASS} per class")
    return items, [p.parent.name for p in items], usable


def split_valid(n: int, valid_pct: float, seed: int) -> list[int]:
    """The same indices as fastai's RandomSplitter(valid_pct, seed)."""
    if valid_pct <= 0:
        return []
    return list(map(int, fastai_vision().RandomSplitter(valid_pct, seed)(list(range(n)))[1]))


def make_dataloaders(
    items: list[Path],
    labels: list[str],
    classes: list[str],
    valid_idx: list[int],
    size: int,
    cfg: TrainConfig,
    device=None,
    bs: int | None = None,
):
    """fastai DataLoaders of the items at `size` px, batch size `bs` (default `cfg.bs`)."""
    fv = fastai_vision()
    label_of = dict(zip(map(str, items), labels))
    batch_tfms = []
    if cfg.min_scale < 1:
        batch_tfms.append(fv.RandomResizedCropGPU(size, min_scale=cfg.min_scale, ratio=(3 / 4, 4 / 3)))
    if cfg.aug > 0:
        batch_tfms += fv.aug_transforms(
            mult=cfg.aug, max_zoom=1.0, do_flip=cfg.flip is not False
        )  # "auto" before the head's mirror test: yes
    bb = backbones.get(cfg.arch)
    batch_tfms.append(fv.Normalize.from_stats(bb.mean, bb.std))
    dblock = fv.DataBlock(
        blocks=(_image_block(int(size)), fv.CategoryBlock(vocab=classes)),
        get_items=lambda _: list(items),
        get_y=lambda p: label_of[str(p)],
        splitter=fv.IndexSplitter(valid_idx),
        batch_tfms=batch_tfms,
    )
    # Over N processes (otter.model.distributed) each takes bs/N of every batch: the recipe's steps stay the same.
    bs = distributed.ranks().local_batch(bs or cfg.bs)
    return dblock.dataloaders(Path("."), bs=bs, num_workers=LOADER_WORKERS, device=device)


NONE_CLASS = "__none_of_these__"


def with_negatives(items: list[Path], labels: list[str], classes: list[str], valid_idx: list[int], cfg: TrainConfig, workdir):
    """Items, labels and classes plus `cfg.negatives` synthetic images per training image as an extra class
    (written to `workdir`; scrambled and distorted ones are made from training photos only, never validation)."""
    if cfg.negatives <= 0:
        return items, labels, classes
    from ..data.synthetic import write_negatives

    held_out = set(valid_idx)
    train_idx = [i for i in range(len(items)) if i not in held_out]
    size = int(max(cfg.sizes))
    photos = ResizedImages([items[i] for i in train_idx], size)
    n = max(1, round(cfg.negatives * len(train_idx)))
    negs = write_negatives(Path(workdir) / NONE_CLASS, n, size, seed=cfg.seed, photos=photos)
    return items + negs, labels + [NONE_CLASS] * n, classes + [NONE_CLASS]
