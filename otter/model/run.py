"""One training run's plumbing: the fastai import, the run's state and events (`TrainRun`), the callbacks that report
progress, honour cancellation and keep the body's BatchNorm frozen, the device and the precision."""

from __future__ import annotations

import functools
import math
import threading
import time
from typing import TYPE_CHECKING

from .events import EventSink, TrainEvent
from .jobs import TrainingCancelled

if TYPE_CHECKING:
    from .recipes import TrainConfig


def fastai_vision():
    import fastai.vision.all as fv

    return fv


@functools.cache
def progress_callback_cls():
    fv = fastai_vision()

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
            self.tracker.epoch_done(row, getattr(self.learn.model, "module", self.learn.model))  # not DDP

    return ReportProgress


@functools.cache
def frozen_bn_callback_cls():
    fv = fastai_vision()

    class BodyBatchNormEval(fv.Callback):
        """Keeps the body's BatchNorm layers in eval mode while training: they normalise with the pretrained
        running statistics instead of those of small, similar batches, and the statistics are not overwritten."""

        order = fv.TrainEvalCallback.order + 1

        def before_train(self):
            model = getattr(self.learn.model, "module", self.learn.model)  # unwrapped from DDP
            for m in model[0].modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    import torch

    return BodyBatchNormEval


class BestState:
    """The best state of the model seen on the validation split: highest accuracy, then lowest validation loss; the
    later of two equal ones. Training restores it at the end, so no stage that made the model worse is kept."""

    def __init__(self) -> None:
        self.state: dict | None = None
        self.key: tuple[float, float] | None = None
        self.entry: dict | None = None  # the history row of the kept state
        self.considered = 0

    def consider(self, model, entry: dict) -> bool:
        acc, loss = entry.get("accuracy"), entry.get("valid_loss")
        if acc is None or not math.isfinite(acc):
            return False
        self.considered += 1
        key = (float(acc), -float(loss) if loss is not None and math.isfinite(loss) else -math.inf)
        if self.key is not None and key < self.key:
            return False
        self.key, self.entry = key, dict(entry)
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True


class TrainRun:
    """State of one training run: emits `TrainEvent`s to `on_event`, estimates the time left, holds the cancel
    flag. `train` makes one; callers of `fit_recipe` (cross-validation, bench/) pass their own."""

    def __init__(self, on_event: EventSink | None, cancel: threading.Event | None):
        self.on_event = on_event or (lambda e: None)
        self.cancel = cancel or threading.Event()
        self.start = time.monotonic()
        self.work_start: float | None = None  # when the counted work began (after the small pictures' size probe)
        self.total_work = 1.0
        self.done_work = 0.0
        self.unit = 1.0  # cost of one batch at the current size
        self.stage = ""
        self.size = 0
        self.epoch = 0
        self.epochs = 0
        self.history: list[dict] = []
        self.best = BestState()
        self.kept: dict | None = None  # which state training kept (`BestState`), for model.json
        self.recipe: dict | None = None  # how the recipe changed with the pictures' size (TrainConfig.for_pictures)
        self.head_fit: dict | None = None  # what the fitted linear head's fit chose (otter.model.heads.fit_linear_head)
        self.batch_size = 0  # the batch size used (the recipe's, or the training split's size if that is smaller)
        self.batches = 0  # training batches run

    def emit(self, type_: str, **data) -> None:
        now = time.monotonic()
        elapsed = now - self.start
        frac = self.done_work / self.total_work if self.total_work else 0
        worked = now - (self.work_start or self.start)  # the time the counted work took, without the probe's
        eta = worked / frac - worked if frac > 0.01 else None
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
        self.batches += 1
        self.emit("batch", batch=i, batches=n, loss=loss)

    def epoch_done(self, row: dict, model=None) -> None:
        """Record one epoch's (or the fitted head's) row; with `model`, keep its state if it is the best so far."""
        self.epoch += 1
        entry = {"stage": self.stage, "size": self.size, "epoch": self.epoch} | row
        self.history.append(entry)
        if model is not None:
            self.best.consider(model, entry)
        self.emit("epoch", train_loss=row.get("train_loss"), valid_loss=row.get("valid_loss"), accuracy=row.get("accuracy"))


def check_cancel(run: TrainRun) -> None:
    if run.cancel.is_set():
        raise TrainingCancelled("training cancelled; the previous model is unchanged")


def training_device():
    from .device import pick_device

    return pick_device()


def training_precision(cfg: TrainConfig) -> str:
    """The precision training runs in, "fp32" or "bf16" (autocast): what `cfg.precision` means on this machine
    (`otter.model.device.pick_precision`). bf16 trains the default recipe ~1.5x faster on a CPU with native bf16."""
    from .device import pick_precision

    return pick_precision(training_device(), None if cfg.precision == "auto" else cfg.precision)
