"""Transfer learning (or training from scratch) with fastai: progressive resizing, one-cycle, discriminative rates.

The recipe: with pretrained weights, first fit the head with the body frozen (by default a linear head, fitted
exactly by logistic regression on the frozen features: `fit_linear_head`), then for each size in `sizes` train the
head frozen for `frozen_epochs` and unfreeze and train everything with `slice(lr/100, lr/5)`; from scratch, train
everything at `lr`. All fits
are `fit_one_cycle`. A `TrainJob` runs this in a background thread, reports events through a fastai
callback, and can be cancelled from another thread within one batch.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.error import URLError

import numpy as np
from PIL import Image

from .. import __version__
from ..config import PRECISION_CHOICES
from ..config import models_dir as default_models_dir
from ..data.dataset import list_classes, list_images
from ..data.images import InvalidImage, load_image
from ..data.seen import training_record
from . import backbones
from .events import EventSink, TrainEvent
from .io import save_model
from .jobs import BackgroundJob, TrainError, TrainingBusy, TrainingCancelled, training_lock  # noqa: F401 (training_lock: re-exported)
from .metrics import classification_report
from .recipes import DEFAULT_LR, PRETRAINED_RECIPE, SCRATCH_RECIPE

HEADS = tuple(backbones.HEAD_OPTIONS)
RECIPE = "recipe"  # TrainConfig.lr: the recipe's learning rate (None: find one with lr_find)
MIN_IMAGES_PER_CLASS = 2


@dataclass
class TrainConfig:
    arch: str | None = None  # None: the recipe's (efficientnet_lite0 pretrained, xresnet18 from scratch)
    pretrained: bool = True
    sizes: tuple[int, ...] | None = None  # progressive resizing, e.g. (64, 128, 192)
    epochs: int | tuple[int, ...] | None = None  # per size (one number for all sizes, or one per size)
    frozen_epochs: int | None = None  # per size, head only; pretrained only
    lr: float | str | None = RECIPE  # the recipe's (3e-3 from scratch, 1e-3 pretrained); None: find it with lr_find
    bs: int | None = None  # None: the recipe's (16 pretrained, 32 from scratch)
    valid_pct: float = 0.2
    seed: int = 42
    aug: float = 1.0  # strength multiplier for rotation, warp and lighting; 0 turns augmentation off
    min_scale: float = 1.0  # random resized crop: smallest share of the image kept (1 = no crop; measured best)
    mixup: float | None = None  # MixUp alpha; 0 = off
    label_smoothing: float = 0.1
    wd: float | None = None
    ood_method: str = "mahalanobis"  # "not sure" detector fitted on the validation split (otter.model.ood.METHODS)
    negatives: float = 0.0  # synthetic "none of these" images per training image, as an extra output (otter.data.synthetic)
    precision: str = "auto"  # "auto" ($OTTER_PRECISION, else bf16 autocast on CPUs with native bf16), "fp32" or "bf16"
    freeze_bn: bool | None = None  # pretrained: the body's BatchNorm keeps ImageNet's statistics (eval mode) throughout
    # "linear": one linear layer on the average-pooled features, first fitted exactly by logistic regression on the
    # frozen body's features of the training images (linear probing, then fine-tuning: Kumar et al. 2022; pretrained
    # only). "fastai": fastai's default head (concat pooling, two BatchNorm-Dropout-Linear blocks), trained by SGD.
    head: str | None = None

    def __post_init__(self) -> None:
        recipe = PRETRAINED_RECIPE if self.pretrained else SCRATCH_RECIPE
        for key, value in recipe.items():
            if (self.lr == RECIPE) if key == "lr" else getattr(self, key) is None:  # lr None: lr_find
                setattr(self, key, value)
        self.sizes = tuple(int(s) for s in self.sizes)
        if not isinstance(self.epochs, int):
            self.epochs = tuple(int(e) for e in self.epochs)

    def epochs_per_size(self) -> list[int]:
        e = self.epochs
        if isinstance(e, int):
            return [e] * len(self.sizes)
        e = list(e)
        if len(e) != len(self.sizes):
            raise TrainError(f"give one epoch count per size: {len(self.sizes)} sizes but {len(e)} epoch counts")
        return e

    def check(self) -> None:
        if self.arch not in backbones.NAMES:
            raise TrainError(f"unknown architecture {self.arch!r}; choose one of {', '.join(backbones.NAMES)}")
        if self.pretrained and backbones.get(self.arch).library == "fastai":
            raise TrainError(
                f"{self.arch} has no ImageNet weights: train it from scratch (--no-pretrained), or use efficientnet_lite0"
            )
        if not self.sizes or any(int(s) < 16 or int(s) > 1024 for s in self.sizes):
            raise TrainError("sizes must be between 16 and 1024 pixels, e.g. 64,128")
        if self.head not in HEADS:
            raise TrainError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.head == "linear" and not self.pretrained:
            raise TrainError("the linear head is fitted on pretrained features: train from scratch with head 'fastai'")
        fitted = self.head == "linear"  # the exact fit of the head is a stage of its own
        if any(n < 0 for n in self.epochs_per_size()) or self.frozen_epochs < 0:
            raise TrainError("epochs cannot be negative")
        if sum(self.epochs_per_size()) + self.frozen_epochs < 1 and not fitted:
            raise TrainError("need at least one epoch")
        if not 0 <= self.valid_pct < 0.9:
            raise TrainError("validation share must be between 0 and 0.9")
        if self.bs < 1:
            raise TrainError("batch size must be at least 1")
        if self.lr is not None and not (0 < self.lr < 10):
            raise TrainError("learning rate must be a positive number below 10")
        from .ood import METHODS

        if self.ood_method not in METHODS:
            raise TrainError(f"unknown 'not sure' method {self.ood_method!r}; choose one of {', '.join(METHODS)}")
        if not 0 <= self.negatives <= 10:
            raise TrainError("negatives (synthetic 'none of these' images per training image) must be between 0 and 10")
        if self.precision not in PRECISION_CHOICES:
            raise TrainError(f"unknown precision {self.precision!r}; choose {', '.join(PRECISION_CHOICES)}")
        if self.ood_method == "none_class" and not self.negatives:
            raise TrainError("the none_class 'not sure' method needs synthetic negatives (e.g. negatives=0.5)")


# ---------------------------------------------------------------------------------------------- data


def _fastai():
    import fastai.vision.all as fv

    return fv


_cache_lock = threading.Lock()
_resized: dict[tuple[str, float, int], object] = {}
_resized_bytes = 0
CACHE_BYTES = 1_500_000_000  # resized training images kept in memory between epochs


def load_training_image(path: os.PathLike | str, size: int):
    """Decode and squish-resize once per size and run (cached): on 2 cores, decoding and resizing every
    epoch would cost as much as the model itself. Same operations as `otter.model.preprocess.preprocess`."""
    global _resized_bytes
    key = (str(path), os.path.getmtime(path), int(size))
    with _cache_lock:
        im = _resized.get(key)
    if im is None:
        im = load_image(path).resize((int(size), int(size)), Image.BILINEAR)
        with _cache_lock:
            if _resized_bytes + size * size * 3 <= CACHE_BYTES:
                _resized[key] = im
                _resized_bytes += size * size * 3
    return im


def clear_cache() -> None:
    global _resized_bytes
    with _cache_lock:
        _resized.clear()
        _resized_bytes = 0


@functools.cache
def _image_cls():
    fv = _fastai()

    class OtterImage(fv.PILImage):
        """fastai's PILImage, opened the way prediction opens images (EXIF, alpha, 16-bit, first frame)."""

    return OtterImage


@functools.cache
def _image_block(size: int):
    """fastai's ImageBlock, but its type transform opens *and resizes* (cached), replacing item_tfms=Resize."""
    fv = _fastai()
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
    return list(map(int, _fastai().RandomSplitter(valid_pct, seed)(list(range(n)))[1]))


def make_dataloaders(
    items: list[Path], labels: list[str], classes: list[str], valid_idx: list[int], size: int, cfg: TrainConfig, device=None
):
    fv = _fastai()
    label_of = dict(zip(map(str, items), labels))
    batch_tfms = []
    if cfg.min_scale < 1:
        batch_tfms.append(fv.RandomResizedCropGPU(size, min_scale=cfg.min_scale, ratio=(3 / 4, 4 / 3)))
    if cfg.aug > 0:
        batch_tfms += fv.aug_transforms(mult=cfg.aug, max_zoom=1.0)
    bb = backbones.get(cfg.arch)
    batch_tfms.append(fv.Normalize.from_stats(bb.mean, bb.std))
    dblock = fv.DataBlock(
        blocks=(_image_block(int(size)), fv.CategoryBlock(vocab=classes)),
        get_items=lambda _: list(items),
        get_y=lambda p: label_of[str(p)],
        splitter=fv.IndexSplitter(valid_idx),
        batch_tfms=batch_tfms,
    )
    # Resized images are cached in this process, so loader workers would only add start-up cost.
    return dblock.dataloaders(Path("."), bs=cfg.bs, num_workers=0, device=device)


# ------------------------------------------------------------------------------------------ progress


@functools.cache
def _callback_cls():
    fv = _fastai()

    class ReportProgress(fv.Callback):
        """Turns fastai's loop into events (batch progress, epoch rows) and honours cancellation."""

        order = fv.Recorder.order + 1

        def __init__(self, run: TrainRun):
            self.tracker = run
            self.reporting = True  # off during lr_find, which should still be cancellable

        def before_batch(self):
            if self.tracker.cancel.is_set():
                raise fv.CancelFitException()

        def after_batch(self):
            if self.training and self.reporting:
                self.tracker.batch_done(self.iter + 1, self.n_iter, float(self.loss.detach()))
            if self.tracker.cancel.is_set():
                raise fv.CancelFitException()

        def after_epoch(self):
            if not self.reporting:
                return
            names = list(self.recorder.metric_names[1:-1])  # without "epoch" and "time"
            values = self.recorder.values[-1] if self.recorder.values else []
            row = {n: (None if v is None else float(v)) for n, v in zip(names, values)}
            self.tracker.epoch_done(row)

    return ReportProgress


@functools.cache
def _frozen_bn_cls():
    fv = _fastai()

    class BodyBatchNormEval(fv.Callback):
        """Keeps the body's BatchNorm layers in eval mode while training: they normalise with the pretrained
        running statistics instead of those of small, similar batches, and the statistics are not overwritten."""

        order = fv.TrainEvalCallback.order + 1

        def before_train(self):
            for m in self.learn.model[0].modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    import torch

    return BodyBatchNormEval


class TrainRun:
    """State of one training run: emits `TrainEvent`s to `on_event`, estimates the time left, holds the cancel
    flag. `train` makes one; callers of `fit_recipe` (cross-validation, bench/) pass their own."""

    def __init__(self, on_event: EventSink | None, cancel: threading.Event | None):
        self.on_event = on_event or (lambda e: None)
        self.cancel = cancel or threading.Event()
        self.start = time.monotonic()
        self.total_work = 1.0
        self.done_work = 0.0
        self.unit = 1.0  # cost of one batch at the current size
        self.stage = ""
        self.size = 0
        self.epoch = 0
        self.epochs = 0
        self.history: list[dict] = []

    def emit(self, type_: str, **data) -> None:
        elapsed = time.monotonic() - self.start
        frac = self.done_work / self.total_work if self.total_work else 0
        eta = elapsed / frac - elapsed if frac > 0.01 else None
        self.on_event(
            TrainEvent(
                type_,
                stage=self.stage,
                size=self.size,
                epoch=self.epoch,
                epochs=self.epochs,
                elapsed=elapsed,
                eta=eta,
                progress=min(frac, 1.0),
                **data,
            )
        )

    def batch_done(self, i: int, n: int, loss: float) -> None:
        self.done_work += self.unit
        self.emit("batch", batch=i, batches=n, loss=loss)

    def epoch_done(self, row: dict) -> None:
        self.epoch += 1
        entry = {"stage": self.stage, "size": self.size, "epoch": self.epoch} | row
        self.history.append(entry)
        self.emit("epoch", train_loss=row.get("train_loss"), valid_loss=row.get("valid_loss"), accuracy=row.get("accuracy"))


# -------------------------------------------------------------------------------------------- recipe


def _pretrained_message(arch: str, ex: BaseException) -> str:
    import torch

    return (
        f"cannot download the ImageNet weights for {arch} ({type(ex).__name__}: {str(ex)[:120]}); "
        f"use efficientnet_lite0 (the default: its weights are installed with the app), go without them (in the "
        f"app, untick the ImageNet weights box; on the command line, --no-pretrained), or put the weights file in "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'}/"
    )


def make_learner(dls, classes: list[str], cfg: TrainConfig, workdir: str):
    """fastai's `vision_learner` for `cfg.arch`. Weights that ship in a package (efficientnet_lite0) are loaded
    here, with no network; torchvision's are downloaded by fastai, and offline that fails with one clear line."""
    fv = _fastai()
    loss = fv.LabelSmoothingCrossEntropyFlat(eps=cfg.label_smoothing) if cfg.label_smoothing else fv.CrossEntropyLossFlat()
    cbs = [fv.MixUp(cfg.mixup)] if cfg.mixup else []
    bb = backbones.get(cfg.arch)
    try:
        learn = fv.vision_learner(
            dls,
            backbones.learner_arch(cfg.arch),
            pretrained=cfg.pretrained and not bb.offline_weights,
            normalize=False,
            loss_func=loss,
            metrics=fv.accuracy,
            cbs=cbs,
            path=workdir,
            wd=cfg.wd,
            n_out=len(classes),
            **backbones.HEAD_OPTIONS[cfg.head],
        )
    except (URLError, OSError, RuntimeError) as ex:
        # URLError is an OSError: only a failed download is reported as one; a full disk or an unreadable file says so.
        if cfg.pretrained and (isinstance(ex, URLError) or "download" in str(ex).lower()):
            raise TrainError(_pretrained_message(cfg.arch, ex)) from ex
        if isinstance(ex, OSError):
            raise TrainError(f"cannot build the {cfg.arch} network ({type(ex).__name__}: {ex})") from ex
        raise
    if cfg.pretrained and cfg.freeze_bn:
        learn.train_bn = False  # frozen stages train the head only: no backward pass through the body
        learn.add_cb(_frozen_bn_cls()())
    if cfg.pretrained and bb.offline_weights:
        try:
            backbones.load_imagenet_weights(learn.model, cfg.arch)
        except backbones.BackboneError as ex:
            raise TrainError(str(ex)) from ex
        learn.freeze()  # as vision_learner does for weights it loaded itself
    learn.remove_cb(fv.ProgressCallback)
    learn.logger = fv.noop
    # Channels-last convolutions: ~1.2x faster training on CPU at 128-192 px (bench/train_speed.py).
    learn.to_channelslast(use_amp=False)
    return learn


def fit_recipe(items, labels, classes, valid_idx, cfg: TrainConfig, run: TrainRun, workdir: str, precision: str | None = None):
    """Run the whole schedule in `precision` ("fp32" or "bf16"; by default `training_precision(cfg)`);
    returns (learner, lr_find data or None)."""
    from .device import autocast

    cfg.check()
    # Autocast state is per thread: predictions served from other threads meanwhile are not affected.
    with autocast(_device(), precision or training_precision(cfg)):
        return _fit_schedule(items, labels, classes, valid_idx, cfg, run, workdir)


def _fit_schedule(items, labels, classes, valid_idx, cfg: TrainConfig, run: TrainRun, workdir: str):
    fv = _fastai()
    fv.set_seed(cfg.seed, reproducible=True)
    epochs = cfg.epochs_per_size()
    n_train = len(items) - len(valid_idx)
    frozen = cfg.frozen_epochs if cfg.pretrained else 0
    steps = [math.ceil(n_train / cfg.bs) * (e + frozen) * (s / 64) ** 2 for s, e in zip(cfg.sizes, epochs)]
    if cfg.head == "linear":  # two forward passes (image and mirror image), each about a third of a training step
        steps.append(math.ceil(n_train / cfg.bs) * 2 / 3 * (cfg.sizes[0] / 64) ** 2)
    run.total_work = sum(steps) or 1.0
    learn, lr_data, lr = None, None, cfg.lr
    progress_cb = _callback_cls()(run)
    for size, n_epochs in zip(cfg.sizes, epochs):
        run.size, run.unit = int(size), (int(size) / 64) ** 2
        dls = make_dataloaders(items, labels, classes, valid_idx, int(size), cfg, device=_device())
        if learn is None:
            learn = make_learner(dls, classes, cfg, workdir)
            learn.add_cb(progress_cb)
            if cfg.head == "linear":
                held_out = set(valid_idx)
                train_idx = [i for i in range(len(items)) if i not in held_out]
                fit_linear_head(learn, [items[i] for i in train_idx], [labels[i] for i in train_idx], run, progress_cb)
            if lr is None:
                run.stage, run.epoch, run.epochs = "finding learning rate", 0, 0
                run.emit("stage")
                progress_cb.reporting = False
                try:
                    suggestion = learn.lr_find(show_plot=False, num_it=60)
                    found = float(suggestion.valley)
                except IndexError:  # cancelled, or too few batches: fastai has no losses to suggest from
                    found = float("nan")
                finally:
                    progress_cb.reporting = True
                _check_cancel(run)
                note = None
                if math.isfinite(found) and found > 0:
                    lr = found
                else:
                    lr, note = DEFAULT_LR, f"lr_find found no usable learning rate (too few images?); using {DEFAULT_LR:g}"
                recorded = vars(learn.recorder)  # empty when lr_find stopped before its first batch
                lr_data = {
                    "suggestion": lr,
                    "lrs": [float(x) for x in recorded.get("lrs", [])],
                    "losses": [float(x) for x in recorded.get("losses", [])],
                    "note": note,
                }
                run.emit("lr_find", lr=lr, note=note)
        else:
            learn.dls = dls
        if frozen:
            learn.freeze()
            run.stage, run.epoch, run.epochs = f"head only, {size}px", 0, frozen
            run.emit("stage")
            learn.fit_one_cycle(frozen, lr)
            _check_cancel(run)
        if n_epochs:
            # Unfrozen here, not only after head-only epochs: with none (the head fitted by logistic regression
            # instead) the body stayed frozen and "all layers" trained the head alone.
            learn.unfreeze()
            run.stage, run.epoch, run.epochs = f"all layers, {size}px", 0, n_epochs
            run.emit("stage")
            learn.fit_one_cycle(n_epochs, slice(lr / 100, lr / 5) if cfg.pretrained else lr)
            _check_cancel(run)
    return learn, lr_data


def pooled_features(learn, items: list[Path], run: TrainRun | None = None):
    """The frozen network's average-pooled features of `items` (n x d, float64), each the mean of the image's and its
    mirror image's, through the learner's own validation pipeline (resize and normalisation, no augmentation)."""
    import torch

    trunk = backbones.features_and_classifier(learn.model)[0]
    dl = learn.dls.test_dl(items, bs=learn.dls.bs)
    out, n = [], len(dl)
    was_training = learn.model.training
    learn.model.eval()
    try:
        with torch.no_grad():
            for i, (xb,) in enumerate(dl):
                if run is not None:
                    _check_cancel(run)
                out.append(((trunk(xb).float() + trunk(xb.flip(-1)).float()) / 2).cpu().numpy())
                if run is not None:
                    run.done_work += run.unit * 2 / 3
                    run.emit("batch", batch=i + 1, batches=n, loss=None)
    finally:
        learn.model.train(was_training)
    return np.concatenate(out).astype(np.float64)


def fit_linear_head(learn, items: list[Path], labels: list[str], run: TrainRun, progress_cb=None) -> None:
    """Set the learner's linear head to the logistic regression of `labels` on the frozen body's pooled features of
    `items` (the training images), with its L2 penalty chosen by cross-validation inside them. This is the "frozen
    head first" stage done exactly: on 196 photos per fold it scored 0.951 in 5-fold CV, against 0.92 for fastai's
    head trained by SGD for 3 epochs (bench/RESULTS.md, run 18). Emits a row with the validation figures."""
    import warnings

    import torch
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    run.stage, run.epoch, run.epochs = "head (logistic regression)", 0, 1  # short: a column of the epochs table
    run.emit("stage")
    x = pooled_features(learn, items, run)
    vocab = list(learn.dls.vocab)
    y = np.array([vocab.index(lbl) for lbl in labels])
    present, counts = np.unique(y, return_counts=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's FutureWarnings about its own coming defaults
        if len(present) < 2:
            raise TrainError("the training images need at least two classes")
        if counts.min() >= 2:
            clf = LogisticRegressionCV(Cs=10, cv=int(min(5, counts.min())), max_iter=5000).fit(x, y)
        else:
            clf = LogisticRegression(max_iter=5000).fit(x, y)
    coef, bias = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: one score z for the second; softmax([-z/2, z/2]) = sigmoid(z)
        coef, bias = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-bias / 2, bias / 2])
    last = backbones.features_and_classifier(learn.model)[1]
    weight = torch.zeros_like(last.weight)
    b = torch.full_like(last.bias, -20.0)  # an output with no training image is never the answer
    for row, cls in enumerate(clf.classes_):
        weight[int(cls)] = torch.as_tensor(coef[row], dtype=weight.dtype)
        b[int(cls)] = float(bias[row])
    with torch.no_grad():
        last.weight.copy_(weight)
        last.bias.copy_(b)
    row = {"train_loss": None, "valid_loss": None, "accuracy": None}
    if len(learn.dls.valid_ds):
        if progress_cb is not None:
            progress_cb.reporting = False
        try:
            values = learn.validate()
        finally:
            if progress_cb is not None:
                progress_cb.reporting = True
        row |= {"valid_loss": float(values[0]), "accuracy": float(values[1])}
    run.epoch_done(row)
    _check_cancel(run)


def _check_cancel(run: TrainRun) -> None:
    if run.cancel.is_set():
        raise TrainingCancelled("training cancelled; the previous model is unchanged")


def _device():
    from .device import pick_device

    return pick_device()


def training_precision(cfg: TrainConfig) -> str:
    """The precision training runs in, "fp32" or "bf16" (autocast): what `cfg.precision` means on this machine
    (`otter.model.device.pick_precision`). bf16 trains the default recipe ~1.5x faster on a CPU with native bf16."""
    from .device import pick_precision

    return pick_precision(_device(), None if cfg.precision == "auto" else cfg.precision)


# ------------------------------------------------------------------------------------------- results


def predict_items(learn, items: list[Path], labels: list[str]):
    """Probabilities and losses of `items` with validation transforms (no augmentation)."""
    import torch

    if not items:
        return np.zeros((0, len(learn.dls.vocab))), np.zeros(0)
    grad = torch.is_grad_enabled()  # fastai's get_preds can leave it off: restore the caller's setting, whatever it was
    try:
        dl = learn.dls.test_dl([Path(p) for p in items], bs=64)
        probs, _ = learn.get_preds(dl=dl)
    finally:
        torch.set_grad_enabled(grad)
    probs = probs.float().numpy()
    vocab = list(learn.dls.vocab)
    y = np.array([vocab.index(lbl) for lbl in labels])
    losses = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))
    return probs, losses


NONE_CLASS = "__none_of_these__"


def _with_negatives(items: list[Path], labels: list[str], classes: list[str], valid_idx: list[int], cfg: TrainConfig, workdir):
    """Items, labels and classes plus `cfg.negatives` synthetic images per training image as an extra class
    (written to `workdir`; scrambled and distorted ones are made from training photos only, never validation)."""
    if cfg.negatives <= 0:
        return items, labels, classes
    from ..data.synthetic import write_negatives

    held_out = set(valid_idx)
    train_idx = [i for i in range(len(items)) if i not in held_out]
    size = int(max(cfg.sizes))
    photos = [load_training_image(items[i], size) for i in train_idx]
    n = max(1, round(cfg.negatives * len(train_idx)))
    negs = write_negatives(Path(workdir) / NONE_CLASS, n, size, seed=cfg.seed, photos=photos)
    return items + negs, labels + [NONE_CLASS] * n, classes + [NONE_CLASS]


def none_last(learn) -> None:
    """fastai sorts the vocabulary, so the "none of these" output can be anywhere; move it after the real
    classes (where model.json's extra_outputs and the Predictor expect it) by permuting the last layer's rows.
    Afterwards `learn.dls.vocab` no longer describes the outputs: use the real classes, then "none"."""
    import torch

    vocab = list(learn.dls.vocab)
    if NONE_CLASS not in vocab:
        return
    order = [i for i, c in enumerate(vocab) if c != NONE_CLASS] + [vocab.index(NONE_CLASS)]
    last = backbones.features_and_classifier(learn.model)[1]
    with torch.no_grad():
        last.weight.copy_(last.weight[order].clone())
        if last.bias is not None:
            last.bias.copy_(last.bias[order].clone())


def _fit_honesty(model, items: list[Path], y: np.ndarray, is_valid: np.ndarray, n_classes: int, cfg: TrainConfig):
    """Temperature scaling and the "not sure" threshold from the validation split (otter.model.honest)."""
    from .honest import fit_honesty

    train_idx, valid_idx = np.flatnonzero(~is_valid), np.flatnonzero(is_valid)
    size = int(cfg.sizes[-1])
    return fit_honesty(
        model,
        n_classes,
        size,
        [load_training_image(items[i], size) for i in train_idx],
        y[train_idx],
        [load_training_image(items[i], size) for i in valid_idx],
        y[valid_idx],
        method=cfg.ood_method,
        normalize=backbones.get(cfg.arch).normalize,
    )


@dataclass
class TrainResult:
    model_dir: Path | None
    meta: dict
    learn: object = field(repr=False, default=None)


def _versions() -> dict:
    import fastai
    import timm
    import torch
    import torchvision

    return {
        "otter": __version__,
        "fastai": fastai.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }


def train(
    data_dir: os.PathLike | str,
    cfg: TrainConfig | None = None,
    model_dir: os.PathLike | str | None = None,
    on_event: EventSink | None = None,
    cancel: threading.Event | None = None,
    half: bool = False,
) -> TrainResult:
    """Train on a folder-per-class data set and write the model folder (if `model_dir` is given)."""
    cfg = cfg or TrainConfig()
    cfg.check()
    run = TrainRun(on_event, cancel)
    items, labels, classes = collect_items(data_dir)
    for p in items:  # fail before training, not in the middle of an epoch
        try:
            load_image(p)
        except InvalidImage as ex:
            raise TrainError(f"{p}: {ex}; run `python -m otter verify` to move broken files to the trash") from ex
    valid_idx = split_valid(len(items), cfg.valid_pct, cfg.seed)
    if cfg.valid_pct > 0 and not valid_idx:
        raise TrainError("the validation split is empty; add images or lower the validation share")
    models_root = Path(model_dir).parent if model_dir else default_models_dir()
    with training_lock(models_root), tempfile.TemporaryDirectory(prefix="otter-train-") as workdir:
        run.emit("start", n_train=len(items) - len(valid_idx), n_valid=len(valid_idx), classes=tuple(classes))
        fit_items, fit_labels, fit_classes = _with_negatives(items, labels, classes, valid_idx, cfg, workdir)
        precision = training_precision(cfg)  # once: what runs is what model.json records
        learn, lr_data = fit_recipe(fit_items, fit_labels, fit_classes, valid_idx, cfg, run, workdir, precision)
        learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, _callback_cls())])
        run.stage = "evaluating"
        run.emit("stage")
        vocab = [c for c in learn.dls.vocab if c != NONE_CLASS]
        none_last(learn)
        probs, _ = predict_items(learn, items, labels)
        probs = probs[:, : len(vocab)] / probs[:, : len(vocab)].sum(1, keepdims=True)  # without "none of these"
        y = np.array([vocab.index(lbl) for lbl in labels])
        losses = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))
        is_valid = np.zeros(len(items), dtype=bool)
        is_valid[valid_idx] = True
        report = (
            classification_report(y[is_valid], probs[is_valid].argmax(1), vocab)
            if is_valid.any()
            else {"accuracy": None, "n": 0, "classes": vocab, "confusion": None, "per_class": None}
        )
        # Every validation image (so the validation confusion matrix can be opened cell by cell) and the
        # 200 hardest training images, highest loss first.
        ranked = np.argsort(-losses, kind="stable")
        keep = set(ranked[is_valid[ranked]]) | set(ranked[~is_valid[ranked]][:200])
        order = [i for i in ranked if i in keep]
        review = [
            {
                "image": f"{items[i].parent.name}/{items[i].name}",
                "label": labels[i],
                "predicted": vocab[int(probs[i].argmax())],
                "loss": float(losses[i]),
                "prob": float(probs[i].max()),
                "split": "valid" if is_valid[i] else "train",
            }
            for i in order
        ]
        meta = {
            "classes": vocab,
            "extra_outputs": len(fit_classes) - len(vocab),  # 1: a trained "none of these" output after the classes
            "arch": cfg.arch,
            "head": cfg.head,
            "input_size": int(cfg.sizes[-1]),
            "resize_method": "squish",
            "normalize": backbones.get(cfg.arch).normalize,
            "metrics": {k: report[k] for k in ("accuracy", "n", "per_class")},
            "confusion": report["confusion"],
            "train_config": asdict(cfg),
            "train_precision": precision,
            "history": run.history,
            "lr_find": lr_data,
            "dataset": {
                "path": str(Path(data_dir).resolve()),
                "counts": {c: labels.count(c) for c in vocab},
                "n_train": int(len(items) - len(valid_idx)),
                "n_valid": int(len(valid_idx)),
            },
            "review": review,
            "seen": training_record([items[i] for i in np.flatnonzero(~is_valid)], [items[i] for i in valid_idx]),
            "versions": _versions(),
            "train_seconds": round(time.monotonic() - run.start, 1),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        run.stage = "calibrating"
        run.emit("stage")
        meta["calibration"], meta["ood"], extra = _fit_honesty(learn.model, items, y, is_valid, len(vocab), cfg)
        _check_cancel(run)
        written = None
        if model_dir is not None:
            run.stage = "saving"
            run.emit("stage")
            written = save_model(learn.model, meta, model_dir, half=half, extra_tensors=extra)
        run.emit("done", accuracy=report["accuracy"], model_dir=str(written) if written else None)
    clear_cache()
    return TrainResult(written, meta, learn)


# ----------------------------------------------------------------------------------------------- job


class TrainJob(BackgroundJob):
    """Training in a background thread. `events` grows as it runs; `cancel()` stops it within one batch."""

    kind, noun = "training", "a training job"

    def __init__(
        self,
        data_dir: os.PathLike | str,
        model_dir: os.PathLike | str,
        cfg: TrainConfig | None = None,
        on_done: Callable[[TrainJob], None] | None = None,
    ):
        super().__init__(on_done)
        self.data_dir, self.model_dir, self.cfg = Path(data_dir), Path(model_dir), cfg or TrainConfig()
        self.result: TrainResult | None = None

    def check(self) -> None:
        self.cfg.check()

    def work(self) -> TrainResult:
        return train(self.data_dir, self.cfg, self.model_dir, on_event=self.events.append, cancel=self._cancel)

    def cleanup(self) -> None:
        clear_cache()
