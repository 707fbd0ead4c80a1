"""Every command with relative folders, as the README writes them (`--data data`, `--models models`)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from conftest import made_photos, make_small_set
from otter.cli import main
from otter.data.dataset import list_trash


def test_commands_work_with_relative_data_and_models_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_small_set(tmp_path / "data", per_class=4, size=48)
    (tmp_path / "data" / "river" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 40)

    assert main(["verify", "--data", "data", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["file"] for t in report["trashed"]] == ["river/broken.jpg"]
    assert [t["name"] for t in list_trash(tmp_path / "data")] == ["broken.jpg"]

    train = ["train", "--data", "data", "--models", "models", "--no-pretrained", "--arch", "resnet18"]
    assert main([*train, "--sizes", "32", "--epochs", "1", "--bs", "4", "--quiet", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert Path(trained["model"]).name == f"river-sea-{date.today().isoformat()}"  # named as the app names models

    photo = made_photos("sea", 1)[0]
    assert main(["predict", "--models", "models", "--json", str(photo)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] in ("river", "sea")
    assert main(["evaluate", "--models", "models", "--json", "data"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 8

    audit = ["audit", "--data", "data", "--models", "models", "--folds", "2", "--json"]  # heads on embeddings
    assert main(audit) == 0
    assert len(json.loads(capsys.readouterr().out)) == 8
