"""On a Space: storage under /data when it is there, a line that says where things live, ZeroGPU's decorator
around every GPU use (with a stand-in `spaces` module), and the per-request limits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, made_photos
from otter import config
from otter.app import curate

STAND_IN_SPACES = '''
"""A stand-in for Hugging Face's `spaces` package (ZeroGPU): it checks that arguments and results pickle, as
ZeroGPU sends them to another process, and records which functions asked for a GPU."""
import pickle

CALLS = []


def GPU(fn=None, **settings):
    def decorate(f):
        def run(*args, **kwargs):
            pickle.dumps((args, kwargs))
            CALLS.append(f.__name__)
            out = f(*args, **kwargs)
            pickle.dumps(out)
            return out

        return run

    return decorate(fn) if fn is not None else decorate
'''


def test_zerogpu_runs_predict_many_photos_and_explain_in_gpu_functions_with_picklable_arguments(model_copy, tmp_path):
    (tmp_path / "standin").mkdir()
    (tmp_path / "standin" / "spaces.py").write_text(STAND_IN_SPACES)
    photo = str(made_photos("sea", 1)[0])
    script = textwrap.dedent(f"""
        import json, spaces
        from otter.app.ui import build_app, predict_view, predict_many_view
        from otter.app.ui_explain import explain_view
        ctx = build_app({str(tmp_path / "data")!r}, {str(model_copy.parent)!r}).otter_context
        assert predict_view(ctx, {photo!r}, None)[0] is not None
        assert predict_many_view(ctx, [{photo!r}, {photo!r}], None).note.startswith("2 classified")
        assert explain_view(ctx.models, {photo!r}, None).overlay is not None
        print(json.dumps(spaces.CALLS))
    """)
    env = {"PYTHONPATH": f"{tmp_path / 'standin'}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    calls = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"predict_on_device", "predict_files_on_device", "explain_on_device"} <= set(calls)


def test_a_space_keeps_its_data_under_its_storage_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("OTTER_DATA_DIR", raising=False)
    monkeypatch.delenv("OTTER_MODELS_DIR", raising=False)
    monkeypatch.setattr(config, "SPACE_STORAGE", tmp_path / "bucket")
    monkeypatch.setenv("SPACE_ID", "ann/otters")
    # no storage mounted: the working folder, and a warning that a restart loses it
    assert config.data_dir() == config.Path("data")
    assert "restart LOSES them" in config.storage_line(config.data_dir(), config.models_dir())
    (tmp_path / "bucket").mkdir()
    assert config.data_dir() == tmp_path / "bucket" / "data" and config.models_dir() == tmp_path / "bucket" / "models"
    assert "kept across restarts" in config.storage_line(config.data_dir(), config.models_dir())
    monkeypatch.setenv("OTTER_DATA_DIR", str(tmp_path / "mine"))  # set by the owner: always wins
    assert config.data_dir() == tmp_path / "mine"
    monkeypatch.delenv("SPACE_ID")  # off a Space a /data folder is not ours to use
    monkeypatch.delenv("OTTER_DATA_DIR")
    assert config.data_dir() == config.Path("data")


def test_too_many_files_in_one_request_are_refused_naming_the_limit(tmp_path, monkeypatch, model_copy):
    from otter.app.ui import build_app, predict_many_view

    monkeypatch.setattr(config, "MAX_FILES_PER_REQUEST", 2)
    data = tmp_path / "data"
    (data / "sea").mkdir(parents=True)
    photos = [str(p) for p in made_photos("sea", 3)]
    msg = curate.upload(data, "sea", photos)
    assert "at most 2 per upload" in msg and "OTTER_MAX_FILES" in msg and not list((data / "sea").iterdir())
    ctx = build_app(data, model_copy.parent).otter_context
    view = predict_many_view(ctx, photos, None)
    assert view.table is None and "at most 2 at once" in view.note


@pytest.mark.parametrize("zero_gpu", [False, True])
def test_the_train_tab_says_training_runs_on_the_cpu_of_a_zerogpu_space(tmp_path, monkeypatch, model_copy, zero_gpu):
    from otter.app.ui import build_app

    if zero_gpu:
        monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    else:
        monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    demo = build_app(tmp_path / "data", model_copy.parent)
    notes = [c["props"].get("value") for c in demo.config["components"] if c["props"].get("elem_id") == "train-zero-gpu"]
    assert notes == ([notes[0]] if zero_gpu else [])
    assert not zero_gpu or ("ZeroGPU" in notes[0] and "run on its CPU" in notes[0])
