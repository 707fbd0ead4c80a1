"""Train › Models without Gradio (otter/app/models_view.py): the models table, deleting to the models trash,
restoring under its name or another, and a refusal (nothing overwritten) when the name is taken."""

from __future__ import annotations

import shutil

from conftest import weights_bytes
from otter.app import models_view
from otter.model.io import trashed_models


def test_delete_then_restore_keeps_the_bytes_and_a_taken_name_is_refused(model_copy):
    models = model_copy.parent
    shutil.copytree(model_copy, models / "other")
    before = weights_bytes(models / "other")
    assert list(models_view.models_table(models)["name"]) in (["other", "tiny"], ["tiny", "other"])
    assert "is empty" in models_view.trash_markdown(models)

    assert "Moved model **other** to the models trash" in models_view.delete_line(models, "other")
    assert list(models_view.models_table(models)["name"]) == ["tiny"]
    (choice,) = models_view.trash_choices(models)
    assert choice[0].startswith("other (trashed 20") and choice[0].endswith(" UTC)")
    assert "1 model in the models trash" in models_view.trash_markdown(models)

    shutil.copytree(model_copy, models / "other")  # the name is taken meanwhile: nothing is overwritten
    refused = models_view.restore_line(models, choice[1])
    assert refused.startswith("⚠️ Not restored: a model named **other** exists") and "Restore as" in refused
    assert weights_bytes(models / "other") == weights_bytes(model_copy) and len(trashed_models(models)) == 1

    assert "Restored model **other-2**" in models_view.restore_line(models, choice[1], " other-2 ")
    assert weights_bytes(models / "other-2") == before and trashed_models(models) == []
    assert models_view.restore_line(models, choice[1]) == "That model is no longer in the models trash."


def test_bad_requests_get_one_line_and_change_nothing(model_copy):
    models = model_copy.parent
    assert models_view.delete_line(models, None) == "Pick a model to delete first."
    assert models_view.delete_line(models, "../tiny").startswith("⚠️")
    assert models_view.delete_line(models, "nope").startswith("⚠️ no model 'nope'")
    models_view.delete_line(models, "tiny")
    trash_id = trashed_models(models)[0]["id"]
    assert models_view.restore_line(models, None) == "Pick a model in the models trash first."
    assert models_view.restore_line(models, trash_id, "../escape").startswith("⚠️")
    assert models_view.restore_line(models, trash_id, "<b>x</b>").startswith("⚠️")
    assert not (models.parent / "escape").exists() and len(trashed_models(models)) == 1
