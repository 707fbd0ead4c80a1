"""Long work (training, audits) in a background thread: events as it runs, cancel, one job at a time.

The UI polls a job's `events` and `state`; the job's work function gets a `cancel` event it must check
often (training checks once per batch) and reports progress by appending to `events`. Only one job of any
kind runs at a time in a process, since each keeps both CPU cores busy; the training lock in the models
folder (`training_lock`) extends that to other processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from filelock import FileLock, Timeout

from ..errors import JobBusy, JobCancelled, OtterError, describe, log, one_line
from .events import JobEnded, event_type


class TrainError(OtterError, RuntimeError):
    """Training cannot start or failed; the message says why and what to do."""


class TrainingBusy(TrainError, JobBusy):
    """Another training job holds the models folder."""


class TrainingCancelled(TrainError, JobCancelled):
    """The job was cancelled; no model was written."""


def running_jobs() -> list[BackgroundJob]:
    """The jobs of every kind (training, audit, embeddings) running in this process now."""
    return [kind._current for kind in BackgroundJob._kinds if kind._current is not None and kind._current.running]


@contextmanager
def training_lock(models_root: os.PathLike | str) -> Iterator[None]:
    """One training job (or audit) at a time per models folder, across threads and processes (released if killed)."""
    models_root = Path(models_root)
    models_root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(models_root / ".train.lock", timeout=0, thread_local=False)  # filelock: Linux, macOS, Windows
    try:
        lock.acquire()
    except Timeout as ex:
        raise TrainingBusy("a training job or an audit is already running; wait for it or cancel it") from ex
    try:
        yield
    finally:
        lock.release()


class BackgroundJob:
    """One run of `work()` in a daemon thread. `events` grows as it runs; `state` is pending, running, done,
    cancelled or failed, with `error` a one-line message; `cancel()` asks `work()` to stop.

    Subclasses set `kind` and `noun` and implement `work()`, returning the job's result."""

    kind: ClassVar[str] = "job"  # in failure messages and thread names: "training failed: ..."
    noun: ClassVar[str] = "a job"  # in busy messages: "a training job is already running"
    cancelled_message: ClassVar[str | None] = None  # None: the TrainingCancelled's own message
    _current: ClassVar[BackgroundJob | None] = None  # per subclass: the last job of that kind started
    _kinds: ClassVar[list[type[BackgroundJob]]] = []
    _guard = threading.Lock()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._current = None
        BackgroundJob._kinds.append(cls)

    def __init__(self, on_done: Callable[[BackgroundJob], None] | None = None):
        self.events: list = []  # progress Events (otter.progress), then a JobEnded
        self.state = "pending"
        self.error: str | None = None
        self.result = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_done = on_done
        self.started = time.time()

    @classmethod
    def current(cls):
        """The last job of this kind that was started (running or finished), or None."""
        return cls._current

    @property
    def running(self) -> bool:
        return self.state in ("pending", "running")

    def check(self) -> None:
        """Raise TrainError if the job cannot start (called before its thread starts)."""

    def work(self):
        raise NotImplementedError

    def cleanup(self) -> None:
        """Runs after `work()`, however it ended."""

    def start(self):
        with BackgroundJob._guard:
            for kind in BackgroundJob._kinds:
                cur = kind._current
                if cur is not None and cur.running:
                    if kind is type(self):
                        raise TrainingBusy(f"{cur.noun} is already running; wait for it or cancel it")
                    raise TrainingBusy(f"{cur.noun} is running; start {self.noun} when it has finished, or cancel it")
            self.check()
            self.state = "running"
            type(self)._current = self
            self._thread = threading.Thread(target=self._run, name=f"otter-{self.kind}", daemon=True)
            self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None):
        if self._thread:
            self._thread.join(timeout)
        return self

    def last(self, type_: str):
        """The newest event of type `type_`, or None."""
        for e in reversed(self.events):
            if event_type(e) == type_:
                return e
        return None

    def _run(self) -> None:
        state, error = "failed", None
        try:
            self.result = self.work()
            state = "done"
        except TrainingCancelled as ex:
            state, error = "cancelled", self.cancelled_message or one_line(ex)
        except OtterError as ex:
            error = one_line(ex)
        except Exception as ex:  # a bug: the traceback goes to the server log, the UI says where to look
            error = f"{self.kind} failed: {describe(ex)}"
        finally:
            # The job counts as running until its cleanup is over: a job started earlier could otherwise have
            # its fresh cache cleared by this one's cleanup.
            try:
                self.cleanup()
            except Exception:
                log.exception("%s: cleanup failed", self.kind)
            self.state, self.error = state, error
            self.events.append(JobEnded(self.state, self.error))
            if self._on_done:
                try:
                    self._on_done(self)
                except Exception:
                    log.exception("%s: on_done failed", self.kind)
