"""Training in its own process, as the app starts it: a crash or an out-of-memory there ends that process, not
the server, and the training loop does not share the server's interpreter (nor its GIL).

The app's `ProcessTrainJob` starts `python -m otter.model.worker` (or, with `OTTER_TRAIN_PROCESSES` = N > 1,
`accelerate launch --multi_gpu --num_processes N -m otter.model.worker`) and reads its progress back from an
events file: one JSON line per `TrainEvent`, then one line saying how it ended. Cancel sends SIGTERM: each
training process stops after its current batch (the same cancel flag as a training in a thread), and whatever
is still running after `GRACE_SECONDS` is killed. A process that dies without a word (killed, out of memory)
is reported in one line with its exit status; the previous model stays, since models are swapped in whole.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path

from .events import TrainEvent
from .jobs import BackgroundJob, TrainError, TrainingCancelled

__all__ = ["PROCESSES_ENV", "ProcessTrainJob", "launch_command", "train_processes"]

PROCESSES_ENV = "OTTER_TRAIN_PROCESSES"
ENTRY = "otter.model.worker"  # the module each training process runs (tests put a stand-in here)
GRACE_SECONDS = 30.0  # after Cancel: time to stop at a batch's end before the processes are killed
POLL_SECONDS = 0.2
CANCELLED = "training cancelled; the previous model is unchanged"


def train_processes() -> int:
    """How many processes the app trains with: $OTTER_TRAIN_PROCESSES, else one per visible GPU, else 1."""
    value = os.environ.get(PROCESSES_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise TrainError(f"${PROCESSES_ENV}={value!r}: give a whole number of processes, 1 or more")
        return int(value)
    import torch

    return max(1, torch.cuda.device_count())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(processes: int, args: list[str]) -> list[str]:
    """The command that runs `ENTRY` with `args` in `processes` processes on this machine."""
    if processes <= 1:
        return [sys.executable, "-m", ENTRY, *args]
    # --multi_gpu on a CPU too: otter.model.distributed asks Accelerate for gloo when no GPU is visible.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*launch, "--main_process_port", str(_free_port()), "-m", ENTRY, *args]


# ------------------------------------------------------------------------------------------ the server


class ProcessTrainJob(BackgroundJob):
    """A training in child processes, watched from a thread of the server: the same `events`, `state`, `error`
    and `cancel()` as a training in a thread (`otter.model.train.TrainJob`)."""

    kind, noun = "training", "a training job"

    def __init__(self, data_dir: os.PathLike | str, model_dir: os.PathLike | str, cfg=None, on_done=None):
        from .train import TrainConfig

        super().__init__(on_done)
        self.data_dir, self.model_dir, self.cfg = Path(data_dir), Path(model_dir), cfg or TrainConfig()
        self.processes = train_processes()
        self.pid: int | None = None  # the process started (the launcher, with several processes)
        self.command: list[str] = []

    def check(self) -> None:
        self.cfg.check()

    def work(self) -> Path:
        with tempfile.TemporaryDirectory(prefix="otter-train-job-") as tmp:
            events_file = Path(tmp) / "events.jsonl"
            events_file.touch()
            config_file = Path(tmp) / "config.json"
            config_file.write_text(json.dumps(asdict(self.cfg)))
            args = ["--data", str(self.data_dir), "--model", str(self.model_dir), "--config", str(config_file)]
            self.command = launch_command(self.processes, [*args, "--events", str(events_file)])
            # A session of its own: Cancel can signal the whole group, never the server.
            proc = subprocess.Popen(self.command, start_new_session=True, stdin=subprocess.DEVNULL)
            self.pid = proc.pid
            try:
                end = self._follow(proc, events_file)
            finally:
                _end_tree(proc)
        if self._cancel.is_set():
            raise TrainingCancelled(CANCELLED)
        if end is None:
            raise TrainError(f"the training process ended unexpectedly ({_exit_status(proc.returncode)}); see the server log")
        if end["state"] == "cancelled":
            raise TrainingCancelled(end.get("error") or CANCELLED)
        if end["state"] != "done" or proc.returncode != 0:
            raise TrainError(end.get("error") or f"training failed ({_exit_status(proc.returncode)})")
        return self.model_dir

    def _follow(self, proc: subprocess.Popen, events_file: Path) -> dict | None:
        """Read events until the processes exit; on Cancel, SIGTERM them, and kill them after GRACE_SECONDS."""
        end, cancelled_at, pending = None, None, ""
        with open(events_file) as fh:
            while True:
                exited = proc.poll() is not None
                lines = (pending + fh.read()).split("\n")
                pending = lines.pop()  # a line still being written, if any
                for line in filter(None, lines):
                    record = json.loads(line)
                    if "event" in record:
                        self.events.append(_event(record["event"]))
                    elif end is None or end["state"] == "done":  # the first failure is the one to report
                        end = record["end"]
                if exited:
                    return end
                if self._cancel.is_set():
                    if cancelled_at is None:
                        cancelled_at = time.monotonic()
                        _signal_tree(proc, signal.SIGTERM)
                    elif time.monotonic() - cancelled_at > GRACE_SECONDS:
                        _signal_tree(proc, signal.SIGKILL)
                time.sleep(POLL_SECONDS)


def _event(data: dict) -> TrainEvent:
    known = {f.name for f in fields(TrainEvent)}
    data = {k: v for k, v in data.items() if k in known}
    if "classes" in data:
        data["classes"] = tuple(data["classes"])
    return TrainEvent(**data)


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def _signal_tree(proc: subprocess.Popen, sig: int) -> None:
    """Signal the launched process's group and every process under it (torchrun starts each training process
    in a session of its own, so the group alone does not reach them)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    if sig == signal.SIGKILL:  # SIGTERM goes to the launcher alone: it stops its workers in order
        for child in children:
            try:
                child.send_signal(sig)
            except psutil.Error:
                pass


def _end_tree(proc: subprocess.Popen) -> None:
    """Nothing of the job outlives it: whatever is left (a launcher's worker) is killed."""
    import psutil

    try:
        left = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        left = []
    if proc.poll() is None:
        _signal_tree(proc, signal.SIGKILL)
    for child in left:
        try:
            child.kill()
        except psutil.Error:
            pass
    proc.wait()


# ---------------------------------------------------------------------------------------- the worker


class _EventWriter:
    """Appends one JSON line per record to the events file, one write each (whole lines, even from N processes)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def write(self, record: dict) -> None:
        os.write(self.fd, (json.dumps(record) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    """One training process: train as `otter.model.train.train` does, events and the end to the events file."""
    from ..config import quiet_dependency_warnings
    from ..errors import describe, one_line
    from . import distributed
    from .train import TrainConfig, train

    quiet_dependency_warnings()
    p = argparse.ArgumentParser(prog="python -m otter.model.worker", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--config", required=True, help="TrainConfig as JSON")
    p.add_argument("--events", required=True, help="file the events are appended to, one JSON line each")
    args = p.parse_args(argv)
    out = _EventWriter(args.events)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())  # stop after this batch, as Cancel does in a thread
    try:
        cfg = TrainConfig(**json.loads(Path(args.config).read_text()))
        train(args.data, cfg, args.model, on_event=lambda e: out.write({"event": asdict(e)}), cancel=cancel)
    except TrainingCancelled as ex:
        out.write({"end": {"state": "cancelled", "error": one_line(ex)}})
        return 1
    except Exception as ex:
        if distributed.peer_failure(ex):  # another process failed and says why
            return 1
        message = describe(ex)
        if distributed.launched():
            message = f"process {distributed.world_rank()} of {distributed.world_size()}: {message}"
        out.write({"end": {"state": "failed", "error": message}})
        return 1
    if distributed.ranks().is_main:
        out.write({"end": {"state": "done", "error": None}})
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written (models are fsynced and renamed into place, events are written unbuffered): skip the
    # interpreter's teardown of torch and fastai, which took 10 s of a loaded 2-core machine after a Cancel.
    os._exit(code)
