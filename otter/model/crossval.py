"""Out-of-fold predictions: stratified k-fold training of one recipe, each image predicted by the model that never saw it.

All folds train on the same images, so they are decoded and squished to the largest training size once
(`shrink_copy`) instead of once per fold: on 2 CPU cores, decoding and resizing full-size JPEGs costs
about as much as the network itself at 64 px.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.images import InvalidImage, load_image
from .events import EventSink, TrainEvent
from .heads import fold_indices
from .train import TrainConfig, TrainError, TrainRun, clear_cache, fit_recipe, predict_items


def shrink_copy(items: list[Path], size: int, dest: os.PathLike | str) -> list[Path]:
    """Squish every image to size x size once and save it losslessly under `dest` (same order as `items`).

    Training squishes anyway (`ResizeMethod.Squish`), so later resizes of the copy see the same geometry."""
    from PIL import Image

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i, p in enumerate(items):
        target = dest / f"{i:06d}.png"
        try:
            im = load_image(p)
        except InvalidImage as ex:
            raise TrainError(f"{p}: {ex}; run `python -m otter verify` to move broken files to the trash") from ex
        im.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0).save(target, compress_level=1)
        out.append(target)
    return out


def out_of_fold(
    items: list[Path],
    labels: list[str],
    classes: list[str],
    cfg: TrainConfig,
    folds: int = 5,
    seed: int = 0,
    on_event: EventSink | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """Probabilities (n_images x n_classes, columns in `classes` order) from k models, each image scored by the
    model whose training folds left it out. Events are training's, plus "fold" and overall "progress"/"eta"."""
    on_event = on_event or (lambda e: None)
    cancel = cancel or threading.Event()
    cfg = replace(cfg, keep_best=False)  # each fold's held-out images are what is scored: they may not pick a state
    fold_valid = fold_indices(labels, folds, seed)
    probs = np.full((len(items), len(classes)), np.nan)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="otter-cv-") as tmp:
        small = shrink_copy(items, max(cfg.sizes), Path(tmp) / "images")
        on_event(TrainEvent("prepared", elapsed=time.monotonic() - start))
        try:
            for k, valid_idx in enumerate(fold_valid):

                def forward(e: TrainEvent, k: int = k) -> None:
                    done = (k + (e.progress or 0.0)) / folds
                    elapsed = time.monotonic() - start
                    eta = elapsed / done - elapsed if done > 0.01 else None
                    on_event(replace(e, fold=k + 1, folds=folds, fold_progress=e.progress, progress=done, eta=eta))

                run = TrainRun(forward, cancel)
                forward(TrainEvent("fold", progress=0.0))
                learn, _ = fit_recipe(small, labels, classes, valid_idx, cfg, run, str(Path(tmp) / f"fold{k}"))
                v_items = [small[i] for i in valid_idx]
                p, _ = predict_items(learn, v_items, [labels[i] for i in valid_idx])
                vocab = list(learn.dls.vocab)
                probs[valid_idx] = p[:, [vocab.index(c) for c in classes]]
        finally:
            clear_cache()  # the shrunk copies are about to disappear
    return probs
