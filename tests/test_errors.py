"""One error type: what the user can act on is an OtterError shown as its one line; anything else is a bug,
shown as a short "internal error" line with its traceback in the log (CLI: stderr; app: the server log)."""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import pickle
import pkgutil
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

import otter
from otter import errors
from otter.app.ui import friendly
from otter.data import dataset, images
from otter.data.images import InvalidImage, load_image
from otter.errors import BadInput, JobBusy, JobCancelled, ModelError, OtterError

ROOT = Path(__file__).resolve().parents[1]


def every_exception_class() -> dict[str, type]:
    found = {}
    for info in pkgutil.walk_packages(otter.__path__, "otter."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_public_exception_of_the_package_is_an_otter_error_of_the_right_kind():
    found = every_exception_class()
    public = {name: cls for name, cls in found.items() if not name.rsplit(".", 1)[1].startswith("_")}
    assert {name for name, cls in public.items() if not issubclass(cls, OtterError)} == set()
    kinds = {
        "otter.data.images.InvalidImage": BadInput,
        "otter.data.safepath.UnsafePath": BadInput,
        "otter.data.dataset.DatasetError": BadInput,
        "otter.model.evaluate.EvaluateError": BadInput,
        "otter.model.explain.ExplainError": BadInput,
        "otter.cli_common.CliError": BadInput,
        "otter.model.backbones.BackboneError": ModelError,
        "otter.app.service.NoModel": ModelError,
        "otter.model.jobs.TrainingBusy": JobBusy,
        "otter.model.jobs.TrainingCancelled": JobCancelled,
    }
    assert {name: kind for name, kind in kinds.items() if not issubclass(found[name], kind)} == {}
    # Callers that caught the built-in kinds still do.
    assert issubclass(found["otter.data.images.InvalidImage"], ValueError)
    assert issubclass(found["otter.model.jobs.TrainError"], RuntimeError)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), images.NOT_AN_IMAGE),
        (lambda p: p.write_text("hello, not a picture"), images.NOT_AN_IMAGE),
        (lambda p: Image.new("RGB", (3, 3)).save(p, "JPEG"), images.TOO_SMALL),
        (lambda p: p.write_bytes(_jpeg_bytes()[:-2000]), images.BROKEN),
        (lambda p: p.mkdir(), images.NO_FILE),
        (lambda p: None, images.NO_FILE),
    ],
)
def test_an_invalid_image_carries_a_reason_code_and_a_detail(tmp_path, make, reason):
    path = tmp_path / "a: photo.jpg"  # a ": " in the name must not change what the detail is
    make(path)
    with pytest.raises(InvalidImage) as info:
        load_image(path, min_side=8)
    ex = info.value
    assert ex.reason == reason and ex.name == "a: photo.jpg"
    assert str(ex) == f"a: photo.jpg: {ex.detail}" and ": photo.jpg" not in ex.detail
    copy = pickle.loads(pickle.dumps(ex))  # ZeroGPU sends failures back from another process
    assert (type(copy), copy.reason, copy.detail, str(copy)) == (InvalidImage, ex.reason, ex.detail, str(ex))


def _jpeg_bytes() -> bytes:
    import io

    out = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").save(out, "JPEG")
    return out.getvalue()


def test_verify_records_the_detail_not_a_piece_of_the_file_name(tmp_path):
    (tmp_path / "sea").mkdir()
    (tmp_path / "sea" / "otter 2: b.jpg").write_bytes(b"")
    report = dataset.verify_folder(tmp_path)
    assert [t["reason"] for t in report["trashed"]] == ["file is empty (0 bytes)"]


# ------------------------------------------------------------------------------------------------ the CLI


def run_cli(*argv: str, patch: str = "") -> subprocess.CompletedProcess:
    """`python -m otter ARGV` in a fresh process, after `patch` (Python run first, to plant a bug)."""
    code = f"import sys; from otter import cli\n{patch}\nraise SystemExit(cli.main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_shows_an_otter_error_as_its_one_line_without_a_traceback(tmp_path):
    out = run_cli("models", "delete", "nothing-here", "--models", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr


def test_cli_shows_an_unexpected_error_as_internal_with_the_traceback_on_stderr(tmp_path):
    bug = (
        "import otter.model.default_model as dm\n"
        "def broken(root):\n"
        "    raise ValueError('operands could not be broadcast together')\n"
        "dm.model_rows = broken"
    )
    out = run_cli("models", "--models", str(tmp_path), patch=bug)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == "error: internal error (ValueError), see the log"
    assert "Traceback (most recent call last)" in out.stderr and "in broken" in out.stderr
    assert "ValueError: operands could not be broadcast together" in out.stderr

    out = run_cli("models", "--json", "--models", str(tmp_path), patch=bug)
    assert json.loads(out.stdout) == {"error": "internal error (ValueError), see the log"}


# ------------------------------------------------------------------------------------------------ the app


def test_an_app_handler_shows_an_otter_error_as_its_one_line(tmp_path, caplog):
    handler = friendly(lambda name: dataset.add_class(tmp_path, name))
    with caplog.at_level(logging.ERROR, logger="otter"), pytest.raises(gr.Error) as info:
        handler("../outside")
    with pytest.raises(OtterError) as direct:
        dataset.add_class(tmp_path, "../outside")
    assert info.value.message == str(direct.value) and "\n" not in info.value.message
    assert caplog.records == []


def test_an_app_handler_shows_an_unexpected_error_as_internal_and_logs_the_traceback(caplog):
    def handler(x):
        return {"a": 1}[x] if x else int("not a number")

    with caplog.at_level(logging.ERROR, logger="otter"), pytest.raises(gr.Error) as info:
        friendly(handler)("")
    assert info.value.message == "internal error (ValueError), see the log"
    [record] = caplog.records
    assert record.exc_info[0] is ValueError and "invalid literal for int()" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text and "in handler" in caplog.text


def test_a_job_that_hits_a_bug_says_internal_error_and_logs_the_traceback(caplog):
    from otter.model.jobs import BackgroundJob

    class Buggy(BackgroundJob):
        kind, noun = "buggy", "a buggy job"

        def work(self):
            raise KeyError("no such column")

    class Refused(BackgroundJob):
        kind, noun = "refused", "a refused job"

        def work(self):
            raise BadInput("the data folder has one class; add another")

    with caplog.at_level(logging.ERROR, logger="otter"):
        job = Buggy().start().wait(30)
        assert (job.state, job.error) == ("failed", "buggy failed: internal error (KeyError), see the log")
        assert "Traceback (most recent call last)" in caplog.text and "no such column" in caplog.text
        caplog.clear()
        job = Refused().start().wait(30)
    assert (job.state, job.error) == ("failed", "the data folder has one class; add another")
    assert caplog.records == []


def test_describe_is_what_both_faces_use(caplog):
    assert errors.describe(ModelError("no trained model in models; train one first\nmore")) == (
        "no trained model in models; train one first"
    )
    with caplog.at_level(logging.ERROR, logger="otter"):
        assert errors.describe(ZeroDivisionError("division by zero")) == "internal error (ZeroDivisionError), see the log"
    assert caplog.records[0].exc_info[0] is ZeroDivisionError


def test_a_full_disk_is_shown_as_one_line_that_says_so(caplog):
    """A write that fails because the disk is full (here a real ENOSPC from /dev/full) is the host's to fix, not a bug:
    the face says what happened in one line, instead of "internal error"."""

    def save(_):
        with open("/dev/full", "wb") as f:
            f.write(b"\xff" * 65536)
            f.flush()

    with caplog.at_level(logging.WARNING, logger="otter"), pytest.raises(gr.Error) as info:
        friendly(save)("photo.jpg")
    assert info.value.message.startswith("no space left on the disk") and "\n" not in info.value.message
    assert "free space" in info.value.message and "internal error" not in info.value.message
    assert "No space left on device" in caplog.text


# ------------------------------------------------------------------------------------ errors that said the wrong thing


def test_a_disk_error_while_building_the_network_is_not_called_a_download_failure(monkeypatch, tmp_path):
    from otter.model import train as tr

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tr.fastai_vision(), "vision_learner", no_space)
    cfg = tr.TrainConfig(arch="resnet18", pretrained=True, sizes=(32,), epochs=1, mixup=0.0)
    with pytest.raises(tr.TrainError, match="cannot build the resnet18 network .*No space left on device") as caught:
        tr.make_learner(None, ["a", "b"], cfg, str(tmp_path))
    assert "download" not in str(caught.value)


def test_a_broken_model_folder_is_named_once_not_dropped_silently(tmp_path):
    from otter.model import io as model_io

    (tmp_path / "half-copied").mkdir()
    (tmp_path / "half-copied" / "model.json").write_text("{not json")
    (tmp_path / "empty").mkdir()  # no model.json: not a model, nothing to say
    with pytest.warns(UserWarning, match=r"ignoring model folder .*half-copied") as said:
        assert model_io.list_models(tmp_path) == []
        assert model_io.list_models(tmp_path) == []  # listing runs on every request: said once
    assert len([w for w in said if "ignoring model folder" in str(w.message)]) == 1


def test_a_bug_while_downloading_stops_the_run_instead_of_passing_for_one_urls_error(monkeypatch, tmp_path):
    from otter.data import download

    def bug(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(download, "_fetch", bug)
    with pytest.raises(TypeError, match="a bug"):
        download.download_images(["http://127.0.0.1:9/a.jpg"], tmp_path / "data" / "sea")


# ------------------------------------------------------------------------- what a fastai callback raised

FIT_WITH_A_FAILING_CALLBACK = """
from fastai.callback.core import Callback
from fastai.test_utils import synth_learner
from otter.errors import BadInput


class Failing(Callback):
    def after_batch(self):
        raise BadInput("the data folder changed during training; train again\\n(second line)")


def fit_with_a_failing_callback(*args, **kwargs):
    synth_learner(cbs=Failing()).fit(1)
"""


def test_an_otter_error_raised_in_a_fastai_callback_is_shown_as_its_cause_without_fastais_prefix(tmp_path):
    """fastai rewrites what a callback raised to "Exception occured in `Failing` when calling event `after_batch`:
    <message>"; the CLI, a job (the app's Train tab) and the worker show the cause alone."""
    from otter.model.jobs import BackgroundJob, TrainingCancelled

    namespace: dict = {}
    exec(FIT_WITH_A_FAILING_CALLBACK, namespace)
    cause = "the data folder changed during training; train again"
    with pytest.raises(BadInput) as caught:
        namespace["fit_with_a_failing_callback"]()
    assert "when calling event `after_batch`" in str(caught.value)  # what fastai made of it
    assert errors.describe(caught.value) == cause

    class Training(BackgroundJob):
        kind, noun = "training", "a training"

        def work(self):
            namespace["fit_with_a_failing_callback"]()

    job = Training().start().wait(60)
    assert (job.state, job.error) == ("failed", cause)

    namespace["BadInput"] = lambda message: TrainingCancelled("training cancelled; the previous model is unchanged")
    job = Training().start().wait(60)
    assert (job.state, job.error) == ("cancelled", "training cancelled; the previous model is unchanged")

    (tmp_path / "data" / "a").mkdir(parents=True)
    patch = FIT_WITH_A_FAILING_CALLBACK + "import otter.model.train\notter.model.train.train = fit_with_a_failing_callback\n"
    out = run_cli("train", "--data", str(tmp_path / "data"), "--models", str(tmp_path / "models"), patch=patch)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == f"error: {cause}", out.stderr
