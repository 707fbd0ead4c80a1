"""Training started from the app runs in processes of its own (otter.model.worker): progress comes back, Cancel
ends them, a crash is one line, and the real server keeps answering /predict throughout."""

from __future__ import annotations

import json
import os
import time

import psutil
import pytest
from gradio_client import Client, handle_file

from conftest import ROOT, made_photos, running_app, weights_bytes
from otter.app.jobview import parse_settings
from otter.app.service import TrainService
from otter.model import worker
from otter.model.jobs import TrainError


@pytest.fixture
def app(tiny_trained, tmp_path):
    with running_app(tiny_trained[0], tmp_path) as app:
        app["client"] = Client(app["url"], verbose=False)
        yield app


def answers(app) -> bool:
    out = app["client"].predict(handle_file(str(made_photos("sea", 1)[0])), api_name="/predict")
    return out["label"] in ("river", "sea")


def wait_for(job, type_: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not any(e.type == type_ for e in job.events) and job.running and time.time() < deadline:
        time.sleep(0.1)
    assert any(e.type == type_ for e in job.events), f"no {type_} event: {job.state} {job.error}"


def test_cancel_ends_the_training_process_and_keeps_the_model_while_predict_answers(app, monkeypatch):
    monkeypatch.delenv(worker.PROCESSES_ENV, raising=False)
    models = app["models"]
    before = weights_bytes(models / "tiny")
    job = TrainService(app["data"], models).start(parse_settings("resnet18", False, "32", "50", "0.003", 2, 20), "tiny")
    wait_for(job, "batch")  # progress comes back from the other process, as typed events
    child = psutil.Process(job.pid)
    assert job.pid != os.getpid() and "otter.model.worker" in child.cmdline()
    assert answers(app)  # the server answers while the training runs
    cancelled = time.monotonic()
    job.cancel()
    job.wait(60)
    assert job.state == "cancelled" and "previous model is unchanged" in job.error
    assert time.monotonic() - cancelled < 30  # it stops at the end of its batch; measured 2-5 s (most of it exit)
    assert not psutil.pid_exists(job.pid)
    assert weights_bytes(models / "tiny") == before
    assert answers(app)


def test_a_training_process_that_dies_is_one_line_and_the_server_keeps_serving(app, monkeypatch):
    """A stand-in training reports a batch, then is killed (as by the out-of-memory killer)."""
    monkeypatch.setattr(worker, "ENTRY", "stand_in_training")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    monkeypatch.delenv(worker.PROCESSES_ENV, raising=False)
    job = TrainService(app["data"], app["models"]).start(parse_settings("resnet18", False, "32", "1", "0.003", 2, 20), "x")
    job.wait(120)
    assert [e.type for e in job.events] == ["start", "batch", "failed"]
    assert job.state == "failed"
    assert job.error == "the training process ended unexpectedly (killed by SIGKILL); see the server log"
    assert not (app["models"] / "x").exists()
    assert answers(app)


def test_the_app_trains_with_the_processes_otter_train_processes_asks_for(app, monkeypatch):
    monkeypatch.setenv(worker.PROCESSES_ENV, "2")
    job = TrainService(app["data"], app["models"]).start(parse_settings("resnet18", False, "32", "1", "0.003", 4, 20), "two")
    wait_for(job, "epoch")
    assert job.command[1:3] == ["-m", "accelerate.commands.launch"] and "--num_processes" in job.command
    assert answers(app)
    job.wait(300)
    assert job.state == "done", job.error
    assert json.loads((app["models"] / "two" / "model.json").read_text())["processes"] == 2


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_number_of_processes_is_one_clear_line(monkeypatch, value):
    monkeypatch.setenv(worker.PROCESSES_ENV, value)
    with pytest.raises(TrainError, match="OTTER_TRAIN_PROCESSES"):
        worker.train_processes()
