"""Nothing lost, even by an owner: a model trained (saved) over an existing name goes to the models trash, and
comes back with `python -m otter models restore`; names shown in the app are escaped."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, weights_bytes
from otter.app.curate import counts_markdown, review_keys_legend
from otter.data.dataset import add_class
from otter.data.safepath import UnsafePath
from otter.errors import escape_md
from otter.model.io import ModelError, load_model, restore_model, save_model, trashed_models


def test_saving_over_a_model_moves_the_old_one_to_the_trash_and_restore_brings_it_back(model_copy):
    models = model_copy.parent
    old = weights_bytes(model_copy)
    model, meta = load_model(model_copy)
    for p in model.parameters():
        p.data.add_(1.0)  # a different model under the same name
    save_model(model, meta, model_copy)
    assert weights_bytes(model_copy) != old
    (trashed,) = trashed_models(models)
    assert trashed["name"] == "tiny"
    with pytest.raises(ModelError, match="exists"):
        restore_model(models, "tiny")  # never over the current one
    back = restore_model(models, "tiny", as_name="tiny-before")
    assert weights_bytes(back) == old and trashed_models(models) == []


def test_cli_lists_and_restores_the_models_trash(model_copy):
    models = model_copy.parent
    run = [sys.executable, "-m", "otter", "models"]
    subprocess.run([*run, "delete", "tiny", "--models", str(models)], check=True, cwd=ROOT, capture_output=True)
    listed = json.loads(
        subprocess.run(
            [*run, "trash", "--models", str(models), "--json"], check=True, cwd=ROOT, capture_output=True, text=True
        ).stdout
    )
    assert [r["name"] for r in listed] == ["tiny"]
    subprocess.run([*run, "restore", "tiny", "--models", str(models)], check=True, cwd=ROOT, capture_output=True)
    assert (models / "tiny" / "model.json").is_file()


def test_train_help_and_readme_examples_never_target_the_shipped_model():
    out = subprocess.run(
        [sys.executable, "-m", "otter", "train", "--help"], check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout
    readme = (ROOT / "README.md").read_text()
    for text in (out, readme):
        assert "train" in text and "--model models/otters" not in "\n".join(
            line for line in text.splitlines() if "otter train" in line
        )


HOSTILE = "<img src=x onerror=alert(1)>"


def test_names_are_escaped_where_shown_and_new_classes_refuse_markup(tmp_path):
    (tmp_path / HOSTILE).mkdir()  # a class made by hand keeps working
    assert "<img" not in counts_markdown(tmp_path) and "&lt;img" in counts_markdown(tmp_path)
    assert "<img" not in review_keys_legend([HOSTILE, "sea"])
    assert escape_md("a<b>bold</b>") == "a&lt;b&gt;bold&lt;/b&gt;"
    with pytest.raises(UnsafePath, match="may not hold"):
        add_class(tmp_path, "a<b>bold")
    assert add_class(tmp_path, "sea otter 🦦").is_dir()


def test_error_lines_shown_by_the_app_are_escaped():
    import gradio as gr

    from otter.app.handlers import friendly
    from otter.errors import BadInput

    def refuse():
        raise BadInput("class 'a<b>bold</b>' refused")

    with pytest.raises(gr.Error) as info:
        friendly(refuse)()
    assert "<b>" not in info.value.message and "a&lt;b&gt;bold" in info.value.message
