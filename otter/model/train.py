"""Transfer learning (or training from scratch) with fastai: progressive resizing, one-cycle, discriminative rates.

The recipe (`TrainConfig`, otter.model.recipes): with pretrained weights, first fit the head with the body frozen (by default a linear head, fitted
exactly by logistic regression on the frozen features: `fit_linear_head`), then for each size in `sizes` train the
head frozen for `frozen_epochs` and unfreeze and train everything with `slice(lr/100, lr/5)`; from scratch, train
everything at `lr`. All fits
are `fit_one_cycle`. A `TrainJob` runs this in a background thread, reports events through a fastai
callback (otter.model.run), and can be cancelled from another thread within one batch. The data loading lives in
otter.model.loading, the fitted linear head in otter.model.heads.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import median
from urllib.error import URLError

import numpy as np

from ..config import models_dir as default_models_dir
from ..data.images import InvalidImage, load_image
from ..data.snapshot import frozen
from . import backbones, distributed
from .events import EventSink, mirror_line
from .heads import fit_linear_head, none_last, pooled_features
from .jobs import BackgroundJob, TrainError, TrainingBusy, TrainingCancelled, training_lock
from .loading import (
    CACHE_BYTES,
    NONE_CLASS,
    ResizedImages,
    clear_cache,
    collect_items,
    load_training_image,
    make_dataloaders,
    split_valid,
    with_negatives,
)
from .recipes import (
    DEFAULT_LR,
    HEADS,
    MIN_IMAGES_PER_CLASS,
    PRETRAINED_RECIPE,
    RECIPE,
    SCRATCH_RECIPE,
    SMALL_SIDE,
    TrainConfig,
    recipe_line,
)
from .run import (
    TrainRun,
    check_cancel,
    fastai_vision,
    frozen_bn_callback_cls,
    progress_callback_cls,
    training_device,
    training_precision,
)
from .train_report import evaluate_and_save, predict_items

# The names other modules, the tests and bench/ import from here (the module was split by concern: recipes,
# loading, heads, run).
__all__ = [
    "CACHE_BYTES",
    "DEFAULT_LR",
    "HEADS",
    "MIN_IMAGES_PER_CLASS",
    "NONE_CLASS",
    "PRETRAINED_RECIPE",
    "RECIPE",
    "SCRATCH_RECIPE",
    "ResizedImages",
    "TrainConfig",
    "TrainError",
    "TrainJob",
    "TrainResult",
    "TrainRun",
    "TrainingBusy",
    "TrainingCancelled",
    "clear_cache",
    "collect_items",
    "fit_linear_head",
    "fit_recipe",
    "load_training_image",
    "make_dataloaders",
    "make_learner",
    "none_last",
    "pooled_features",
    "predict_items",
    "split_valid",
    "train",
    "training_lock",
    "training_precision",
]

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
    fv = fastai_vision()
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
        learn.add_cb(frozen_bn_callback_cls()())
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
    with autocast(training_device(), precision or training_precision(cfg)):
        return _fit_schedule(items, labels, classes, valid_idx, cfg, run, workdir)


def _fit_schedule(items, labels, classes, valid_idx, cfg: TrainConfig, run: TrainRun, workdir: str):
    fv = fastai_vision()
    fv.set_seed(cfg.seed, reproducible=True)
    epochs = cfg.epochs_per_size()
    n_train = len(items) - len(valid_idx)
    # fastai drops the last partial training batch: with fewer training images than a batch, no batch would run
    bs = run.batch_size = max(1, min(cfg.bs, n_train))
    frozen = cfg.frozen_epochs if cfg.pretrained else 0
    steps = [math.ceil(n_train / bs) * (e + frozen) * (s / 64) ** 2 for s, e in zip(cfg.sizes, epochs)]
    if cfg.head == "linear":  # one forward pass, about a third of a training step
        steps.append(math.ceil(n_train / bs) * (1 if cfg.head_mirror == "none" else 2) / 3 * (cfg.sizes[0] / 64) ** 2)
    run.total_work = sum(steps) or 1.0
    run.work_start = time.monotonic()  # the time left is estimated from here: the size probe is not counted work
    learn, lr_data, lr = None, None, cfg.lr
    progress_cb = progress_callback_cls()(run)
    for size, n_epochs in zip(cfg.sizes, epochs):
        run.size, run.unit = int(size), (int(size) / 64) ** 2
        dls = make_dataloaders(items, labels, classes, valid_idx, int(size), cfg, device=training_device(), bs=bs)
        if learn is None:
            learn = make_learner(dls, classes, cfg, workdir)
            learn.add_cb(progress_cb)
            distributed.ranks().attach(learn)  # data-parallel over the job's processes, when there are several
            if cfg.head == "linear":
                cfg = _fit_head(learn, items, labels, classes, valid_idx, cfg, run, progress_cb, int(size))
            if lr is None:
                run.stage, run.epoch, run.epochs = "finding learning rate", 0, 0
                run.emit("stage")
                progress_cb.reporting = False
                ranks = distributed.ranks()
                ranks.detach(learn)  # each process alone (lr_find stops at a different step in each), rank 0's rate
                try:
                    with ranks.alone():
                        suggestion = learn.lr_find(show_plot=False, num_it=60)
                    found = float(suggestion.valley)
                except IndexError:  # cancelled, or too few batches: fastai has no losses to suggest from
                    found = float("nan")
                finally:
                    progress_cb.reporting = True
                    ranks.attach(learn)
                found = ranks.broadcast(found)
                check_cancel(run)
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
            check_cancel(run)
        if n_epochs:
            # Unfrozen here, not only after head-only epochs: with none (the head fitted by logistic regression
            # instead) the body stayed frozen and "all layers" trained the head alone.
            learn.unfreeze()
            run.stage, run.epoch, run.epochs = f"all layers, {size}px", 0, n_epochs
            run.emit("stage")
            learn.fit_one_cycle(n_epochs, slice(lr / 100, lr / 5) if cfg.pretrained else lr)
            check_cancel(run)
    if (frozen * len(epochs) + sum(epochs)) and not run.batches:
        raise TrainError(f"no training batch ran ({n_train} training images, batch size {bs}); add images")
    _keep_best(learn, items, labels, classes, valid_idx, cfg, run)
    return learn, lr_data


def _fit_head(learn, items, labels, classes, valid_idx, cfg: TrainConfig, run: TrainRun, progress_cb, size: int):
    """Fit the linear head on the training images (`heads.fit_linear_head`, its record in `run.head_fit`); returns
    the config fine-tuning goes on with: without flips (and with DataLoaders to match) where the head's mirror test
    found that mirror images look like other classes."""
    held_out = set(valid_idx)
    train_idx = [i for i in range(len(items)) if i not in held_out]
    x_items, x_labels = [items[i] for i in train_idx], [labels[i] for i in train_idx]
    test_mirror = cfg.flip == "auto"
    run.head_fit = fit_linear_head(learn, x_items, x_labels, run, progress_cb, cfg.head_mirror, test_mirror)
    if test_mirror and run.head_fit["mirror"] == "none" and cfg.head_mirror != "none":
        # mirror images look like other classes here (digits, letters): fine-tuning shows none either
        cfg = replace(cfg, flip=False)
        learn.dls = make_dataloaders(items, labels, classes, valid_idx, size, cfg, training_device(), bs=run.batch_size)
    return cfg


def _keep_best(learn, items, labels, classes, valid_idx, cfg: TrainConfig, run: TrainRun) -> None:
    """Put back the best state seen on the validation split (`run.best`; the fitted head counts as a stage), with
    DataLoaders at the size it was validated at; `run.kept` says which it was."""
    best = run.best
    if not cfg.keep_best or best.state is None:
        reason = "keep_best is off" if not cfg.keep_best else "no validation split"
        run.kept = {"stage": run.history[-1]["stage"] if run.history else None, "chosen": "last", "reason": reason}
        return
    learn.model.load_state_dict(best.state)
    run.kept = {k: best.entry.get(k) for k in ("stage", "size", "epoch", "accuracy", "valid_loss")}
    run.kept |= {"chosen": "best on the validation split", "of": best.considered}
    if int(best.entry["size"]) != int(run.size):
        run.size = int(best.entry["size"])
        learn.dls = make_dataloaders(items, labels, classes, valid_idx, run.size, cfg, training_device(), bs=run.batch_size)


# ------------------------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    model_dir: Path | None
    meta: dict
    learn: object = field(repr=False, default=None)


def _checked_data(data_dir: os.PathLike | str, cfg: TrainConfig):
    """(items, labels, classes, validation indices, the median shorter side of the images), or the TrainError that
    says why not."""
    cfg.check()
    items, labels, classes = collect_items(data_dir)
    sides = []
    for p in items:  # fail before training, not in the middle of an epoch
        try:
            sides.append(min(load_image(p).size))
        except InvalidImage as ex:
            raise TrainError(f"{p}: {ex}; run `python -m otter verify` to move broken files to the trash") from ex
    valid_idx = split_valid(len(items), cfg.valid_pct, cfg.seed)
    if cfg.valid_pct > 0 and not valid_idx:
        raise TrainError("the validation split is empty; add images or lower the validation share")
    return items, labels, classes, valid_idx, float(median(sides)) if sides else 0.0


# The size probe reads at most this many training images (a stratified sample): it compares two sizes' frozen
# features, and a head's held-out log-loss settles on a few thousand images, so a large set of small pictures does
# not pay a full 224 px pass over its images before training starts.
PROBE_IMAGES = 2000


def probe_sample(idx: list[int], labels: list[str], cap: int, seed: int) -> list[int]:
    """`idx` when it has at most `cap` images, else a seeded sample of about `cap` of them, each class in proportion
    and with at least 3 (or all it has), so that the probe's cross-validation sees every class."""
    if len(idx) <= cap:
        return idx
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i in idx:
        by_class.setdefault(labels[i], []).append(i)
    chosen = []
    for members in by_class.values():
        take = min(len(members), max(3, round(cap * len(members) / len(idx))))
        chosen += [int(i) for i in rng.choice(members, take, replace=False)]
    return sorted(chosen)


def choose_recipe(items, labels, classes, valid_idx, cfg: TrainConfig, side: float, run: TrainRun, workdir: str, precision: str):
    """The config to train with and model.json's "recipe": for small pictures (`TrainConfig.for_pictures`), the
    recipe whose size lets a head fitted on the frozen features of the training images (at most PROBE_IMAGES of them)
    reach the lower held-out log-loss (`heads.choose_c`); else `cfg` and None."""
    from .device import autocast
    from .heads import choose_c

    small = cfg.for_pictures(side)
    if small is None:
        return cfg, None
    run.stage = f"choosing the size: {small.sizes[0]} or {cfg.sizes[0]} px"
    run.emit("stage")
    held = set(valid_idx)
    train_idx = probe_sample([i for i in range(len(items)) if i not in held], labels, PROBE_IMAGES, cfg.seed)
    loss, learn = {}, None
    with autocast(training_device(), precision):
        for c in (small, cfg):
            dls = make_dataloaders(items, labels, classes, valid_idx, c.sizes[0], c, training_device(), bs=c.bs)
            if learn is None:
                learn = make_learner(dls, classes, c, workdir)
            learn.dls = dls
            x = pooled_features(learn, [items[i] for i in train_idx], mirror="none")
            check_cancel(run)
            vocab = list(dls.vocab)
            y = np.array([vocab.index(labels[i]) for i in train_idx])
            loss[f"{c.sizes[0]} px"] = min(choose_c(x, y, len(vocab), c.label_smoothing)[1].values(), default=0.0)
    chosen = small if loss[f"{small.sizes[0]} px"] < loss[f"{cfg.sizes[0]} px"] else cfg
    recipe = {"median_side": round(side, 1), "limit": SMALL_SIDE, "head_log_loss": loss}
    recipe["chosen"] = "small pictures" if chosen is small else "usual"
    changed = {k: getattr(small, k) for k in ("sizes", "epochs", "lr") if getattr(small, k) != getattr(cfg, k)}
    return chosen, recipe | ({k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()} if chosen is small else {})


def train(
    data_dir: os.PathLike | str,
    cfg: TrainConfig | None = None,
    model_dir: os.PathLike | str | None = None,
    on_event: EventSink | None = None,
    cancel: threading.Event | None = None,
    half: bool = False,
) -> TrainResult:
    """Train on a folder-per-class data set and write the model folder (if `model_dir` is given).

    In a job of several processes (`accelerate launch`, `otter.model.distributed`) every process calls this:
    they share the training; rank 0 alone checks the data, holds the training lock, reports events, evaluates,
    calibrates and writes the model, and every process returns its folder and model.json."""
    cfg = cfg or TrainConfig()
    ranks = distributed.ranks()
    run = TrainRun(on_event if ranks.is_main else None, cancel)
    items, labels, classes, valid_idx, side = ranks.on_main(lambda: _checked_data(data_dir, cfg))
    models_root = Path(model_dir).parent if model_dir else default_models_dir()
    # The files are fixed at start (hard links, otter.data.snapshot): curating meanwhile neither fails the run nor
    # changes what it trains on, and model.json["seen"] records those files' hashes.
    with contextlib.ExitStack() as stack:
        ranks.on_main(lambda: stack.enter_context(training_lock(models_root)))
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="otter-train-"))
        items = stack.enter_context(frozen(data_dir, items))
        precision = training_precision(cfg)  # once: what runs is what model.json records
        probe = (items, labels, classes, valid_idx, cfg, side, run, workdir, precision)
        cfg, run.recipe = ranks.on_main(lambda: choose_recipe(*probe))  # small pictures: which size sees them better
        note = recipe_line(run.recipe)  # said as training starts
        run.emit("start", n_train=len(items) - len(valid_idx), n_valid=len(valid_idx), classes=tuple(classes), note=note)
        fit_items, fit_labels, fit_classes = with_negatives(items, labels, classes, valid_idx, cfg, workdir)
        learn, lr_data = fit_recipe(fit_items, fit_labels, fit_classes, valid_idx, cfg, run, workdir, precision)
        split = ranks.split_report(learn)
        ranks.detach(learn)  # rank 0 evaluates alone from here
        learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, progress_callback_cls())])
        args = (learn, items, labels, valid_idx, fit_classes, cfg, run, lr_data, precision, split)
        written, meta, accuracy = ranks.on_main(lambda: evaluate_and_save(*args, data_dir, model_dir, half))
        run.emit(
            "done",
            accuracy=accuracy,
            model_dir=str(written) if written else None,
            kept=meta["kept"],
            calibration=meta["calibration"],
            note=mirror_line(meta.get("head_fit")),
        )
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
