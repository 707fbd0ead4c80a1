"""How every long job says where it is: one typed event (`Event`) for training, the audit, computing embeddings
and downloads; a long job takes `progress` (or training's `on_event`), a callable given each event, and a background
job (`otter.model.jobs.BackgroundJob`) keeps them in `events`, ending with a `JobEnded`. `Printer` is the command
line's one printer of them. Plain Python, no torch: the CLI and the app's views import this without the jobs' code.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Event:
    """One report of a long job, read by attribute. `type` says what happened and which optional fields it fills:

    Training (`otter.train`; also inside a fine-tuning audit, with fold, folds and fold_progress):
    - "start": n_train, n_valid, classes, and note (how the recipe changed with the pictures' size, else None)
    - "stage": a stage begins ("finding learning rate", "head only, 192px", "all layers, 192px", "evaluating",
      "calibrating", "saving"; the audit's own: "reading the images", "fitting 5-fold heads", ...); `stage` names it
    - "lr_find": lr (the rate found, or the fallback) and note (why the fallback, else None)
    - "batch": batch, batches (of this epoch), loss (the batch's training loss)
    - "epoch": train_loss, valid_loss, accuracy of the epoch just finished (None when not measured)
    - "done": accuracy (validation; None without a validation split), model_dir (None when not saved), kept (which
      stage's state was saved: model.json's "kept"), calibration (model.json's "calibration") and note (when the
      fitted head's test left mirror images out, the line that says so; else None)
    - "fold" (cross-validation only): fold `fold` of `folds` starts
    Items (`done` of `total`):
    - "embed": images whose embeddings were computed (`otter.embed_folder`; the audit's first stage)
    - "download": URLs fetched, `outcome` the last one's `otter.data.download.Outcome`

    Every event also says where the job is: stage, elapsed seconds, eta (seconds left, None while unknown) and
    progress (0..1 of the whole job); training adds size (px) and epoch (finished in this stage) of epochs.
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
    # "embed", "download"
    done: int | None = None
    total: int | None = None
    outcome: object | None = None  # "download": the URL's Outcome


@dataclass(frozen=True)
class JobEnded:
    """The last event of every background job: `type` is its final state ("done", "failed" or "cancelled") and
    `error` the one-line message (None when done)."""

    type: str
    error: str | None = None


EventSink = Callable[[Event], None]


def event_type(event: Event | JobEnded) -> str:
    return event.type


def items_event(type_: str, done: int, total: int, start: float, **fields) -> Event:
    """An "embed" or "download" event: `done` of `total` items, `start` the job's time.monotonic() start."""
    elapsed = time.monotonic() - start
    eta = elapsed / done * (total - done) if done else None
    return Event(type_, done=done, total=total, progress=done / total if total else 1.0, elapsed=elapsed, eta=eta, **fields)


def clock(seconds: float | None) -> str:
    """Seconds as m:ss (h:mm:ss from an hour), "–" when unknown: elapsed time and time left, in the CLI and the app."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def parse_ints(text: str | None) -> tuple[int, ...]:
    """ "64, 128" -> (64, 128); blank -> (). ValueError names the text when a part is not a whole number. Sizes and
    epochs as the command line and the Train tab take them."""
    parts = [p for p in (text or "").replace(" ", "").split(",") if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected whole numbers separated by commas, e.g. 64,128 (got {text!r})") from None


class Printer:
    """The command line's progress, for every job, on stderr: a line per stage, epoch, fold and failed download;
    batches, embeddings and downloads as one live line on a terminal, elsewhere a line every 10%. Stages and epochs
    inside a cross-validation fold are left out (the fold line says where it is). `counts` tallies download
    outcomes by status, even when `quiet`."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None):
        self.quiet, self._stream = quiet, stream
        self.counts: Counter[str] = Counter()
        self._live_at = 0.0
        self._tenth: dict[str, int] = {}

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr  # looked up when printing: tests and callers may swap sys.stderr

    def __call__(self, e: Event) -> None:
        if e.type == "download":
            self.counts[getattr(e.outcome, "status", "")] += 1
        if not self.quiet:
            getattr(self, f"_{e.type}", lambda e: None)(e)

    def _say(self, line: str) -> None:
        print(line, file=self.stream)

    def _live(self, line: str, last: bool, every_tenth: tuple[str, int, int] | None = None) -> None:
        """`line` overwriting the previous one on a terminal; elsewhere only the last and each new tenth."""
        if self.stream.isatty():
            if last or time.monotonic() - self._live_at > 0.5:
                self._live_at = time.monotonic()
                print(f"\r  {line}  ", end="\n" if last else "", file=self.stream)
        elif every_tenth is not None:
            kind, done, total = every_tenth
            tenth = int(10 * done / max(total, 1))
            if last or tenth > self._tenth.get(kind, -1):
                self._tenth[kind] = tenth
                self._say(f"  {line}")

    def _start(self, e: Event) -> None:
        self._say(f"training on {e.n_train} images, validating on {e.n_valid}; classes: {', '.join(e.classes)}")
        if e.note:
            self._say(e.note)

    def _stage(self, e: Event) -> None:
        if e.fold is None:
            self._say(f"== {e.stage}")

    def _lr_find(self, e: Event) -> None:
        self._say(f"learning rate found: {e.lr:.2e}")

    def _epoch(self, e: Event) -> None:
        if e.fold is None:
            measured = {"train_loss": e.train_loss, "valid_loss": e.valid_loss, "accuracy": e.accuracy}
            vals = "  ".join(f"{k} {v:.4f}" for k, v in measured.items() if v is not None)
            self._say(f"epoch {e.epoch}/{e.epochs} {e.size}px  {vals}  elapsed {clock(e.elapsed)}  eta {clock(e.eta)}")

    def _fold(self, e: Event) -> None:
        self._say(f"fold {e.fold}/{e.folds}  {100 * (e.progress or 0):.0f}%  eta {clock(e.eta)}")

    def _batch(self, e: Event) -> None:
        self._live(f"batch {e.batch}/{e.batches}  {100 * (e.progress or 0):.0f}%  eta {clock(e.eta)}", last=False)

    def _embed(self, e: Event) -> None:
        line = f"embeddings: {e.done}/{e.total} new images  eta {clock(e.eta)}"
        self._live(line, last=e.done == e.total, every_tenth=("embed", e.done, e.total))

    def _download(self, e: Event) -> None:
        o = e.outcome
        if o.status == "failed":
            start = "\r" if self.stream.isatty() else ""  # overwrite the live counter on a terminal
            self._say(f"{start}  {o.reason}: {o.url}" + (f" ({o.detail})" if o.detail else ""))
        c = self.counts
        line = f"{e.done}/{e.total}  kept {c['kept']}  failed {c['failed']}  duplicates {c['duplicate']}"
        self._live(line, last=e.done == e.total, every_tenth=("download", e.done, e.total))
