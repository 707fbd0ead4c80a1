"""What a training run reports as it goes (`train(on_event=...)`, `TrainJob.events`): typed events, read by
attribute, as fastai's callbacks read the learner's typed attributes.

Plain data, no torch: the CLI and the app's view-models import this without loading the training code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainEvent:
    """One report of a training run. `type` says what happened and which of the optional fields it fills:

    - "start": n_train, n_valid, classes
    - "stage": a stage begins ("finding learning rate", "head only, 192px", "all layers, 192px", "evaluating",
      "calibrating", "saving"); `stage` names it
    - "lr_find": lr (the rate found, or the fallback) and note (why the fallback, else None)
    - "batch": batch, batches (of this epoch), loss (the batch's training loss)
    - "epoch": train_loss, valid_loss, accuracy of the epoch just finished (None when not measured)
    - "done": accuracy (validation; None without a validation split), model_dir (None when not saved), kept (which
      stage's state was saved: model.json's "kept") and calibration (model.json's "calibration")
    - "fold" (cross-validation only): fold `fold` of `folds` starts

    Every event also says where the run is: stage, size (px), epoch (finished in this stage) of epochs, elapsed
    seconds, eta (seconds left, None until about 1% is done) and progress (0..1 of the whole run). Cross-validation
    adds fold, folds and fold_progress (this fold's own progress), and `progress` is then the whole audit's.
    """

    type: str
    stage: str = ""
    size: int = 0
    epoch: int = 0
    epochs: int = 0
    elapsed: float = 0.0
    eta: float | None = None
    progress: float | None = None
    # "start"
    n_train: int | None = None
    n_valid: int | None = None
    classes: tuple[str, ...] = ()
    # "lr_find"
    lr: float | None = None
    note: str | None = None
    # "batch"
    batch: int | None = None
    batches: int | None = None
    loss: float | None = None
    # "epoch" ("done" sets accuracy too)
    train_loss: float | None = None
    valid_loss: float | None = None
    accuracy: float | None = None
    # "done"
    model_dir: str | None = None
    kept: dict | None = None
    calibration: dict | None = None
    # cross-validation
    fold: int | None = None
    folds: int | None = None
    fold_progress: float | None = None


@dataclass(frozen=True)
class JobEnded:
    """The last event of every background job: `type` is its final state ("done", "failed" or "cancelled") and
    `error` the one-line message (None when done)."""

    type: str
    error: str | None = None


EventSink = Callable[[TrainEvent], None]


def event_type(event: TrainEvent | JobEnded | dict) -> str | None:
    """The type of any job event: a typed event's `type`; the audit's and the embeddings' progress reports are
    still dicts with a "type" key."""
    return event.get("type") if isinstance(event, dict) else event.type


def kept_line(kept: dict | None) -> str | None:
    """One line saying which stage's state a training kept (model.json's "kept"), or None if it does not say."""
    if not kept or not kept.get("stage"):
        return None
    if kept.get("chosen") == "last":
        return f"kept the last state ({kept['stage']}): {kept.get('reason', 'no validation split')}"
    stage = kept["stage"] if "epoch" not in kept or "head" in kept["stage"] else f"{kept['stage']}, epoch {kept['epoch']}"
    acc = kept.get("accuracy")
    return f"kept {stage}: the best of {kept.get('of', 1)} on the validation split" + (
        f" (accuracy {acc:.3f})" if acc is not None else ""
    )


def calibration_line(cal: dict | None) -> str | None:
    """One line saying whether a temperature was fitted (model.json's "calibration"), or None if nothing is known."""
    if not cal:
        return None
    if cal.get("skipped"):
        return f"calibration: none ({cal['skipped']})"
    where = cal.get("fitted_on") or f"{cal.get('n', '?')} validation images, {cal.get('errors', '?')} wrong"
    return f"calibration: temperature {cal['temperature']:.2f} fitted on {where}"
