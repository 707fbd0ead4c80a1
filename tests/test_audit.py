"""The audit: planted label errors and cross-class copies rank first (heads on embeddings by default, fine-tuned
networks as an option), actions keep the saved audit current, "keep" is remembered across audits, the job can be
cancelled, and the CLI's JSON contract."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from conftest import made_photos, make_shapes
from otter import cli
from otter.data import dataset, manifest
from otter.model.events import JobEnded
from otter.model.train import TrainingBusy, training_lock
from otter.progress import Event
from otter.review import audit as au

# Small but real training: shapes are told apart by colour, which a from-scratch net learns in a few epochs.
TINY = {"arch": "xresnet18", "pretrained": False, "sizes": (32,), "epochs": 10, "bs": 4, "lr": 1e-2, "mixup": 0.0, "aug": 0.0}
ROUGH = {"pretrained": False, "sizes": (16,), "epochs": 1, "bs": 8}  # for tests about plumbing, not about ranking

FLIPPED = {"square/disc003.png": "disc", "disc/square005.png": "square"}  # planted error: its true class
EXACT = {"disc/disc007.png", "square/copy-disc007.png"}
NEAR = {"disc/otter.jpg", "square/otter-cropped.jpg"}
N_IMAGES = 31


def make_planted(dest: Path) -> Path:
    """Shapes with two flipped labels, an exact copy filed under the other class, and a photo under one class
    with a cropped, re-encoded copy of it under the other."""
    data = make_shapes(dest, per_class=14)
    shutil.move(data / "disc" / "disc003.png", data / "square" / "disc003.png")
    shutil.move(data / "square" / "square005.png", data / "disc" / "square005.png")
    shutil.copyfile(data / "disc" / "disc007.png", data / "square" / "copy-disc007.png")
    with Image.open(made_photos("sea", 1)[0]) as im:
        photo = im.convert("RGB").resize((160, 120))
    photo.save(data / "disc" / "otter.jpg", quality=90)
    photo.crop((12, 9, 148, 111)).save(data / "square" / "otter-cropped.jpg", quality=75)
    return data


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    data = make_planted(base / "data")
    result = au.audit(data, folds=3, seed=0, models_dir=base / "models")  # heads on embeddings, the default
    return data, result


@pytest.fixture
def data_copy(audited, tmp_path) -> Path:
    """A private copy of the audited data set, with its saved audit."""
    dest = tmp_path / "data"
    shutil.copytree(audited[0], dest)
    return dest


def test_conflicts_then_flipped_labels_rank_first(audited):
    _, result = audited
    rows = result.rows
    assert {r["image"] for r in rows[:2]} == EXACT
    assert all(r["reason"] == "duplicate" and r["flagged"] for r in rows[:2])
    assert rows[0]["same_as"] == [rows[1]["image"]]
    assert {r["image"] for r in rows[2:4]} == NEAR
    assert all(r["reason"] == "near-duplicate" and r["flagged"] for r in rows[2:4])
    # Next: the planted label errors, flagged, with their true class suggested.
    assert {r["image"] for r in rows[4:6]} == set(FLIPPED)
    for r in rows[4:6]:
        assert r["flagged"] and r["reason"] == "label"
        assert r["suggested"] == FLIPPED[r["image"]]
        assert r["score"] < 0.5
    flipped_worst = max(r["score"] for r in rows[4:6])
    clean = [r for r in rows if r["image"] not in EXACT | NEAR | set(FLIPPED)]
    assert all(r["score"] > flipped_worst for r in clean)
    assert result.meta["method"] == "embeddings" and result.meta["config"] is None
    assert result.meta["folds"] == 3 and result.meta["n_images"] == len(rows) == N_IMAGES


def test_a_planted_flip_on_a_tiny_set_ranks_first(tmp_path):
    data = make_shapes(tmp_path / "data", per_class=8)
    shutil.move(data / "square" / "square004.png", data / "disc" / "square004.png")
    result = au.audit(data, folds=3, models_dir=tmp_path / "models", save=False)
    first = result.rows[0]
    assert first["image"] == "disc/square004.png" and first["suggested"] == "square"
    assert first["flagged"] and first["reason"] == "label"
    assert result.meta["accuracy"] == 15 / 16  # every other image is judged right


def test_finetuned_networks_rank_the_planted_flips_too(data_copy, tmp_path):
    result = au.audit(data_copy, folds=3, config=au.quick_config(**TINY), models_dir=tmp_path / "models", method="finetune")
    assert result.meta["method"] == "finetune" and tuple(result.meta["config"]["sizes"]) == (32,)
    rows = result.rows
    assert {r["image"] for r in rows[:4]} == EXACT | NEAR  # the conflicts come from the embeddings either way
    assert {r["image"] for r in rows[4:6]} == set(FLIPPED)


def test_saved_audit_loads_with_confusion_cells(audited):
    data, result = audited
    loaded = au.load_audit(data)
    assert [r["image"] for r in loaded.rows] == [r["image"] for r in result.rows]
    assert loaded.rows[0] == result.rows[0]
    assert loaded.classes == ["disc", "square"]
    assert not au.is_stale(data, loaded)
    conf = loaded.confusion()
    assert sum(map(sum, conf)) == N_IMAGES
    cell = au.images_in_cell(loaded, "square", "disc")
    assert "square/disc003.png" in [r["image"] for r in cell]
    assert all(r["label"] == "square" and r["suggested"] == "disc" for r in cell)
    assert len(cell) == conf[1][0]


def test_relabel_and_trash_update_data_manifest_and_audit(data_copy):
    new = au.relabel(data_copy, "square/disc003.png", "disc")
    assert new == "disc/disc003.png" and (data_copy / new).is_file()
    assert not (data_copy / "square" / "disc003.png").exists()
    df = manifest.read(data_copy)
    assert df.loc[df["file"] == new, "status"].item() == "relabelled"
    result = au.load_audit(data_copy)
    row = next(r for r in result.rows if r["image"] == new)
    assert row["label"] == "disc" and not row["flagged"] and row["score"] > 0.5
    assert not au.is_stale(data_copy, result)  # our own action keeps the audit current

    trash_id = au.trash(data_copy, "disc/square005.png")
    assert not (data_copy / "disc" / "square005.png").exists()
    assert "disc/square005.png" not in [r["image"] for r in au.load_audit(data_copy).rows]
    assert not au.is_stale(data_copy, au.load_audit(data_copy))
    dataset.restore(data_copy, trash_id)  # undo, outside the audit: now the audit is out of date
    assert (data_copy / "disc" / "square005.png").is_file()
    assert au.is_stale(data_copy, au.load_audit(data_copy))


def test_keep_is_remembered_across_audits(data_copy, tmp_path):
    au.keep(data_copy, "square/copy-disc007.png")
    row = next(r for r in au.load_audit(data_copy).rows if r["image"] == "square/copy-disc007.png")
    assert row["kept"] and not row["flagged"] and row["reason"] is None
    sha = manifest.sha256_file(data_copy / "square" / "copy-disc007.png")
    assert au.kept(data_copy)[sha]["label"] == "square"

    again = au.audit(data_copy, folds=2, models_dir=tmp_path / "models")
    rows = {r["image"]: r for r in again.rows}
    assert rows["square/copy-disc007.png"]["kept"] and not rows["square/copy-disc007.png"]["flagged"]
    assert rows["disc/disc007.png"]["reason"] == "duplicate" and rows["disc/disc007.png"]["flagged"]
    assert again.rows[0]["image"] == "disc/disc007.png"


def test_cli_json_lists_every_image_most_suspect_first(data_copy, tmp_path, capsys):
    argv = ["audit", "--data", str(data_copy), "--models", str(tmp_path / "m"), "--folds", "2"]
    assert cli.main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == N_IMAGES
    for item in out:
        assert set(item) == {"image", "label", "suggested", "score", "flagged", "reason"}
        assert item["reason"] in (None, "label", "duplicate", "near-duplicate")
        assert item["flagged"] == (item["reason"] is not None)
        assert 0.0 <= item["score"] <= 1.0
    assert {i["image"] for i in out[:2]} == EXACT
    assert {i["image"] for i in out[2:4]} == NEAR
    flagged = [i["flagged"] for i in out]
    assert flagged == sorted(flagged, reverse=True)  # flagged ones first

    assert cli.main(["audit", "--data", str(tmp_path / "nowhere"), "--json"]) == 1
    assert "does not exist" in json.loads(capsys.readouterr().out)["error"]
    assert cli.main([*argv, "--sizes", "16"]) == 1  # recipe options belong to --method finetune
    assert "--method finetune" in capsys.readouterr().err


def test_cli_audit_prints_embedding_progress_then_takes_seconds_from_the_cache(data_copy, tmp_path, capsys):
    import shutil as sh

    sh.rmtree(data_copy / ".otter" / "embeddings")
    argv = ["audit", "--data", str(data_copy), "--models", str(tmp_path / "m"), "--folds", "2"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert f"embeddings: {N_IMAGES - 1}/{N_IMAGES - 1} new images" in captured.err  # the exact copy is computed once
    assert "heads on the embeddings" in captured.out
    assert cli.main(argv) == 0
    assert "embeddings:" not in capsys.readouterr().err
    assert json.loads((data_copy / ".otter" / "audit.json").read_text())["embeddings_computed"] == 0


def test_cli_audit_method_finetune_fine_tunes_the_shipped_imagenet_network(data_copy, tmp_path, capsys):
    argv = ["audit", "--data", str(data_copy), "--models", str(tmp_path / "m"), "--folds", "2", "--method", "finetune"]
    assert cli.main([*argv, "--sizes", "32", "--epochs", "1"]) == 0  # offline: the weights ship with the app
    assert f"{N_IMAGES} images" in capsys.readouterr().out
    config = json.loads((data_copy / ".otter" / "audit.json").read_text())["config"]
    assert (config["arch"], config["pretrained"], config["frozen_epochs"], config["sizes"]) == (
        "efficientnet_lite0",
        True,
        au.QUICK_PRETRAINED_RECIPE["frozen_epochs"],
        [32],
    )
    assert cli.main([*argv, "--sizes", "16", "--epochs", "1", "--no-pretrained"]) == 0
    config = json.loads((data_copy / ".otter" / "audit.json").read_text())["config"]
    assert (config["arch"], config["pretrained"]) == ("xresnet18", False)


def test_audit_refuses_to_start_while_training_holds_the_lock(data_copy, tmp_path):
    with training_lock(tmp_path / "models"), pytest.raises(TrainingBusy):
        au.audit(data_copy, folds=2, models_dir=tmp_path / "models")


def test_embeddings_job_reports_progress_and_cancel_keeps_previous_audit(data_copy, tmp_path):
    import shutil as sh

    from otter.app import audit_view

    before = (data_copy / ".otter" / "audit.csv").read_bytes()
    sh.rmtree(data_copy / ".otter" / "embeddings")  # cold: the job computes embeddings first
    job = au.AuditJob(data_copy, folds=2, models_dir=tmp_path / "models").start()
    job.cancel()
    job.wait(120)
    assert job.state == "cancelled" and "cancelled" in job.error
    assert (data_copy / ".otter" / "audit.csv").read_bytes() == before

    job = au.AuditJob(data_copy, folds=2, models_dir=tmp_path / "models").start().wait(300)
    assert job.state == "done", job.error
    *reports, end = job.events  # the audit's progress events, then the job's end
    assert end == JobEnded("done") and all(isinstance(e, Event) for e in reports)
    embed = [e for e in reports if e.type == "embed"]
    assert embed and embed[-1].done == embed[-1].total and "computing embeddings" in embed[-1].stage
    progress = [e.progress for e in reports if e.progress is not None]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert "fitting 2-fold heads" in [e.stage for e in reports]
    assert "computing embeddings" in audit_view.job_line(SimpleNamespace(events=embed[:1]))


def test_job_reports_folds_and_cancel_keeps_previous_audit(data_copy, tmp_path):
    before = (data_copy / ".otter" / "audit.csv").read_bytes()
    rough = {"config": au.quick_config(**ROUGH), "models_dir": tmp_path / "models", "method": "finetune"}
    job = au.AuditJob(data_copy, folds=2, **rough).start()
    with pytest.raises(TrainingBusy):
        au.AuditJob(data_copy, folds=2, **rough).start()
    job.cancel()
    job.wait(120)
    assert job.state == "cancelled" and "cancelled" in job.error
    assert (data_copy / ".otter" / "audit.csv").read_bytes() == before

    done = threading.Event()
    job = au.AuditJob(data_copy, folds=2, on_done=lambda j: done.set(), **rough).start()
    job.wait(300)
    assert done.is_set() and job.state == "done", job.error
    *reports, end = job.events
    assert end == JobEnded("done") and all(isinstance(e, Event) for e in reports)
    folds = [e.fold for e in reports if e.type == "fold"]
    assert folds == [1, 2]
    progress = [e.progress for e in reports if e.progress is not None and e.type in ("fold", "batch")]
    assert progress == sorted(progress) and progress[-1] > 0.5
    assert au.load_audit(data_copy).meta["folds"] == 2


def test_suspects_view_filters_by_class_and_matrix_clicks_name_cells(audited):
    from otter.app import audit_view

    data, result = audited
    square = audit_view.suspects(result, "square")
    assert square and all(r["label"] == "square" and r["flagged"] for r in square)
    assert len(audit_view.suspects(result, "all")) == len(result.flagged)
    items = audit_view.gallery(data, audit_view.suspects(result))
    assert all(Path(path).is_file() and "→" in caption for path, caption in items)
    table = audit_view.confusion_table(result)
    assert list(table.columns) == [audit_view.LABEL_COLUMN, "disc", "square"]
    assert audit_view.cell_of(result, [1, 1]) == ("square", "disc")
    assert audit_view.cell_of(result, [0, 0]) is None  # the column of class names is not a cell
    assert "square/disc003.png" in [r["image"] for r in audit_view.cell_rows(result, ("square", "disc"))]
    status = audit_view.status_markdown(data, au.load_audit(data))
    assert f"{len(result.flagged)} suspects" in status and "changed" not in status


def test_a_diverged_fold_is_one_line_and_keeps_the_previous_audit(data_copy, tmp_path, monkeypatch):
    """Fold models whose predictions are not numbers (a from-scratch fold that diverged) stop the audit with one
    line; the saved audit is not replaced by one that could not be read back."""
    import numpy as np

    from otter.model import crossval

    def diverged(items, labels, classes, cfg, **kwargs):
        probs = np.full((len(items), len(classes)), 1.0 / len(classes))
        probs[:3] = np.nan
        return probs

    monkeypatch.setattr(crossval, "out_of_fold", diverged)
    before = {f: (data_copy / ".otter" / f).read_bytes() for f in ("audit.csv", "audit.json")}
    with pytest.raises(au.AuditError, match="no usable prediction for 3 images"):
        au.audit(data_copy, folds=2, config=au.quick_config(**ROUGH), models_dir=tmp_path / "models", method="finetune")
    assert {f: (data_copy / ".otter" / f).read_bytes() for f in before} == before
    assert len(au.load_audit(data_copy).rows) == N_IMAGES
