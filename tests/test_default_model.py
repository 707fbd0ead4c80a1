"""The default model: an explicit choice recorded in the models folder, used by Predict, the API and the CLI; a new
training never takes it over by itself; `python -m otter models` lists, chooses and deletes."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date

import pytest

from conftest import made_photos, make_small_set
from otter.app import service
from otter.app.jobview import parse_settings
from otter.app.service import ModelService, TrainService, default_model_name
from otter.cli import main
from otter.model import io as model_io
from otter.model.default_model import comparison, delete_model, set_default
from otter.model.io import DEFAULT_FILE, default_name, seed_models


def copy_model(src, dest, created: str):
    """A copy of a model folder under another name, as if trained at `created` (an ISO time)."""
    shutil.copytree(src, dest)
    meta = json.loads((dest / "model.json").read_text())
    (dest / "model.json").write_text(json.dumps(meta | {"name": dest.name, "created": created}))
    return dest


@pytest.fixture
def two_models(model_copy):
    """A models folder with "tiny" and a newer "newer" (same weights), no default recorded."""
    copy_model(model_copy, model_copy.parent / "newer", "2099-01-01T00:00:00+00:00")
    return model_copy.parent


def cli_json(capsys, *argv) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_recorded_default_answers_in_the_service_and_the_cli(two_models, capsys):
    photo = made_photos("sea", 1)[0]
    assert default_name(two_models) == "newer"  # nothing recorded, no shipped model: the newest
    set_default(two_models, "tiny")
    assert json.loads((two_models / DEFAULT_FILE).read_text()) == {"default": "tiny"}
    assert ModelService(two_models).predict(photo).model == "tiny"
    assert (
        cli_json(capsys, "evaluate", "--models", str(two_models), str(make_small_set(two_models.parent / "d", 2)))["model"]
        == "tiny"
    )
    assert [r["image"] for r in cli_json(capsys, "predict", "--models", str(two_models), str(photo))] == [str(photo)]

    # a record that is broken or names no model falls back: the shipped model if present, else the newest
    (two_models / DEFAULT_FILE).write_text("{not json")
    assert default_name(two_models) == "newer"
    (two_models / DEFAULT_FILE).write_text(json.dumps({"default": "gone"}))
    assert default_name(two_models) == "newer"
    copy_model(two_models / "tiny", two_models / "otters", "2000-01-01T00:00:00+00:00")
    assert default_name(two_models) == "otters"
    assert ModelService(two_models).predict(photo).model == "otters"


def test_predictions_read_the_models_folder_only_when_it_changes(two_models, monkeypatch):
    calls = []
    real = service.list_models
    monkeypatch.setattr(service, "list_models", lambda d: calls.append(d) or real(d))
    svc, photo = ModelService(two_models), made_photos("sea", 1)[0]
    assert svc.predict(photo).model == "newer"
    assert svc.predict(photo).model == "newer"
    assert len(calls) == 1, "a prediction must not list and parse every model.json"
    set_default(two_models, "tiny")  # another process (the CLI) chooses: the next prediction follows
    assert svc.predict(photo).model == "tiny" and len(calls) == 2


def test_a_new_training_does_not_replace_the_default(model_copy, tmp_path, capsys):
    models, photo = model_copy.parent, made_photos("sea", 1)[0]
    data = make_small_set(tmp_path / "data", per_class=6, size=48)
    cfg = parse_settings("resnet18", False, "32", "1", "0.003", 8, 20)
    job = TrainService(data, models).start(cfg, "challenger")
    job.wait(300)
    assert job.state == "done", job.error
    assert default_name(models) == "tiny", "the newest model must not become the default by itself"
    assert ModelService(models).predict(photo).model == "tiny"
    line = comparison(models, "challenger")
    assert "New model **challenger**: " in line and "% on its validation split; current default **tiny**: " in line
    assert "Use for Predict" in line

    # the command line: a model trained beside another does not replace it either
    cli_models = tmp_path / "cli-models"
    shutil.copytree(model_copy, cli_models / "tiny")
    train = ["train", "--data", str(data), "--models", str(cli_models), "--no-pretrained", "--arch", "resnet18"]
    assert main([*train, "--model", str(cli_models / "new"), "--sizes", "32", "--epochs", "1", "--bs", "8", "--quiet"]) == 0
    capsys.readouterr()
    assert default_name(cli_models) == "tiny"
    assert [r["name"] for r in cli_json(capsys, "models", "--models", str(cli_models)) if r["default"]] == ["tiny"]


def test_the_first_model_of_an_empty_folder_is_the_default(tmp_path):
    data, models = make_small_set(tmp_path / "data", per_class=6, size=48), tmp_path / "models"
    job = TrainService(data, models).start(parse_settings("resnet18", False, "32", "1", "0.003", 8, 20), "first")
    job.wait(300)
    assert job.state == "done", job.error
    assert default_name(models) == "first" and not (models / DEFAULT_FILE).exists()
    assert "It is the default model" in comparison(models, "first")


def test_models_json_lists_every_model_with_exactly_one_default(two_models, capsys):
    root = str(two_models)
    rows = cli_json(capsys, "models", "--models", root)
    assert [r["name"] for r in rows] == ["newer", "tiny"]
    assert all(set(r) == {"name", "accuracy", "size_mb", "created", "default"} for r in rows)
    assert [r["name"] for r in rows if r["default"]] == ["newer"]
    assert rows[1]["created"] == json.loads((two_models / "tiny" / "model.json").read_text())["created"]
    assert 0 < rows[1]["accuracy"] <= 1 and rows[1]["size_mb"] > 1
    assert cli_json(capsys, "models", "--models", root, "default", "tiny") == {"default": "tiny"}
    assert [r["name"] for r in cli_json(capsys, "models", "--models", root) if r["default"]] == ["tiny"]
    assert main(["models", "--models", root]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("  newer ") and table[1].startswith("* tiny ") and " MB " in table[1]
    assert cli_json(capsys, "models", "--models", str(two_models.parent / "none")) == []


def test_models_default_and_delete_refuse_unknown_names_in_one_line(two_models, capsys):
    for argv in (["default", "nope"], ["delete", "nope"], ["delete", "../tiny"], ["default", ".trash"]):
        assert main(["models", "--models", str(two_models), *argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in two_models.iterdir() if p.name != ".models.lock") == ["newer", "tiny"]


def test_delete_moves_a_model_to_the_trash_and_it_restores_byte_for_byte(two_models, capsys):
    before = {f.name: f.read_bytes() for f in (two_models / "tiny").iterdir()}
    set_default(two_models, "tiny")
    out = cli_json(capsys, "models", "--models", str(two_models), "delete", "tiny")
    trashed = two_models / ".trash" / os.listdir(two_models / ".trash")[0] / "tiny"
    assert out == {"deleted": "tiny", "trash": str(trashed), "default": "newer"}
    assert not (two_models / "tiny").exists() and {f.name: f.read_bytes() for f in trashed.iterdir()} == before
    rows = cli_json(capsys, "models", "--models", str(two_models))
    assert [(r["name"], r["default"]) for r in rows] == [("newer", True)]  # the default fell back
    os.rename(trashed, two_models / "tiny")  # restore: move it back
    assert {f.name: f.read_bytes() for f in (two_models / "tiny").iterdir()} == before
    assert default_name(two_models) == "newer", "a restored model does not come back as the default"
    assert ModelService(two_models).predict(made_photos("sea", 1)[0], "tiny").model == "tiny"


def test_deleting_the_last_model_leaves_no_default(model_copy):
    delete_model(model_copy.parent, "tiny")
    assert default_name(model_copy.parent) is None and not (model_copy.parent / DEFAULT_FILE).exists()


def test_seed_models_copies_only_the_shipped_default(tiny_trained, tmp_path):
    shipped = tmp_path / "repo" / "models"
    copy_model(tiny_trained[0], shipped / "otters", "2000-01-01T00:00:00+00:00")
    copy_model(tiny_trained[0], shipped / "mine", "2099-01-01T00:00:00+00:00")  # a user's own training, newer
    assert seed_models(tmp_path / "a", shipped) == ["otters"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.name != ".models.lock") == ["otters"]
    set_default(shipped, "mine")  # whatever the repository's models folder records as its default
    assert seed_models(tmp_path / "b", shipped) == ["mine"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if p.name != ".models.lock") == ["mine"]
    assert default_name(tmp_path / "b") == "mine"


def test_default_model_name_says_what_it_is_and_replaces_nothing(tmp_path):
    day = date(2026, 11, 29)
    data, models = make_small_set(tmp_path / "data", per_class=1), tmp_path / "models"
    assert default_model_name(data, models, day) == "river-sea-2026-11-29"
    (models / "river-sea-2026-11-29").mkdir(parents=True)
    assert default_model_name(data, models, day) == "river-sea-2026-11-29-2"
    (models / "river-sea-2026-11-29-2").mkdir()
    assert default_model_name(data, models, day) == "river-sea-2026-11-29-3"
    for c in ("a", "b", "c"):
        (data / c).mkdir()
    assert default_model_name(data, models, day) == "5-classes-2026-11-29"
    assert default_model_name(tmp_path / "no-data", models, day) == "model-2026-11-29"
    assert model_io.list_models(models) == []  # empty folders are not models


def test_a_model_zip_unpacks_into_a_model_that_predicts_the_same(model_copy, tmp_path):
    import zipfile

    from otter.model.io import ModelError
    from otter.model.model_zip import zip_model
    from otter.model.predict import Predictor

    (model_copy / "notes").mkdir()  # subfolders and links are not packed
    (model_copy / "link.json").symlink_to(model_copy / "model.json")
    path = zip_model(model_copy, tmp_path / "zips")
    assert path == tmp_path / "zips" / "tiny.zip"
    names = zipfile.ZipFile(path).namelist()
    assert "tiny/model.json" in names and all(n.startswith("tiny/") for n in names)
    assert not any(n.endswith(("notes", "link.json")) for n in names)
    zipfile.ZipFile(path).extractall(tmp_path / "unpacked")
    photo = made_photos("sea", 1)[0]
    assert Predictor.load(tmp_path / "unpacked" / "tiny").predict(photo) == Predictor.load(model_copy).predict(photo)
    with pytest.raises(ModelError):
        zip_model(tmp_path / "zips", tmp_path / "other")  # not a model folder
