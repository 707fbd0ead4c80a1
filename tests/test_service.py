"""ModelService (cached predictors that follow model folder changes) and TrainService (one shared job), no Gradio."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from conftest import made_photos, make_shapes, weights_bytes
from otter.app.jobview import epoch_table, loss_frame, parse_settings, status_markdown
from otter.app.service import NO_MODEL, ModelService, NoModel, TrainService, shared_model_service
from otter.data.safepath import UnsafePath
from otter.model.io import read_meta
from otter.model.train import TrainError, TrainingBusy


def test_no_model_points_to_train_tab(tmp_path):
    service = ModelService(tmp_path / "models")
    with pytest.raises(NoModel) as info:
        service.predict(made_photos("sea", 1)[0])
    assert "Train" in str(info.value) and str(info.value) == NO_MODEL
    assert service.choices() == [] and service.newest() is None


def test_predict_reports_model_accuracy_and_time(model_copy):
    service = ModelService(model_copy.parent)
    pred = service.predict(made_photos("sea", 1)[0])
    meta = read_meta(model_copy)
    assert set(pred.probs) == set(meta["classes"]) and abs(sum(pred.probs.values()) - 1) < 1e-5
    assert pred.model == "tiny" and pred.accuracy == meta["metrics"]["accuracy"]
    assert pred.seconds > 0 and "tiny" in pred.summary() and "ms" in pred.summary()
    assert f"validation accuracy {meta['metrics']['accuracy']:.1%}" in pred.summary()
    assert service.choices()[0][1] == "tiny"


def test_a_cross_validated_accuracy_is_called_so(model_copy):
    # the shipped model has no validation split: its figure is its recipe's cross-validated accuracy
    meta = read_meta(model_copy)
    meta["metrics"]["accuracy"] = 0.819
    meta["cv"] = {"folds": 5, "accuracy_mean": 0.819}
    (model_copy / "model.json").write_text(json.dumps(meta))
    summary = ModelService(model_copy.parent).predict(made_photos("sea", 1)[0]).summary()
    assert "cross-validated accuracy 81.9%" in summary


def test_predictor_is_cached_until_the_folder_is_replaced(model_copy, tiny_trained):
    service = ModelService(model_copy.parent)
    first = service.predictor("tiny")
    assert service.predictor("tiny") is first
    assert service.predictor(None) is first and service.predictor("gone") is first  # unknown name: the default
    time.sleep(0.01)
    tmp = model_copy.parent / ".tmp-new"
    shutil.copytree(tiny_trained[0], tmp)
    shutil.rmtree(model_copy)
    tmp.rename(model_copy)  # how save_model replaces a folder
    assert service.predictor("tiny") is not first


def test_predict_files_table_has_a_row_per_file_with_errors_inline(model_copy, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    photos = made_photos("river", 2)
    df = ModelService(model_copy.parent).predict_files([*photos, bad])
    assert list(df["file"]) == [p.name for p in photos] + ["notes.jpg"]
    assert (df["error"][:2] == "").all() and "not an image" in df["error"][2]
    assert set(df["label"][:2]) <= {"river", "sea"} and df["label"][2] == ""
    assert {"river", "sea", "probability"} <= set(df.columns)


def test_shared_model_service_is_one_per_folder(tmp_path):
    a = shared_model_service(tmp_path / "models")
    assert shared_model_service(str(tmp_path / "models")) is a
    assert shared_model_service(tmp_path / "other") is not a


def test_start_refuses_bad_data_and_names_at_once(tmp_path):
    data = tmp_path / "data"
    (data / "only").mkdir(parents=True)
    trainer = TrainService(data, tmp_path / "models")
    cfg = parse_settings("resnet18", False, "32", "1", "0.003", 8, 20)
    with pytest.raises(TrainError, match="two classes"):
        trainer.start(cfg, "m")
    make_shapes(data, per_class=4)
    with pytest.raises(UnsafePath):
        trainer.start(cfg, "../outside")
    assert trainer.job() is None or not trainer.running()


def test_job_runs_in_background_refuses_a_second_start_and_cancel_keeps_old_model(tmp_path, model_copy):
    data = make_shapes(tmp_path / "shapes", per_class=12)
    models = model_copy.parent
    before = weights_bytes(model_copy)
    trainer = TrainService(data, models)
    cfg = parse_settings("resnet18", False, "32", "30", "0.003", 4, 20)
    job = trainer.start(cfg, "tiny")
    with pytest.raises(TrainingBusy):
        trainer.start(cfg, "other")
    assert trainer.job() is job and trainer.running()
    deadline = time.time() + 120
    while not any(e.type == "batch" for e in job.events) and time.time() < deadline:
        time.sleep(0.2)
    assert "Training" in status_markdown(job.state, list(job.events))
    assert "Cancelling" in trainer.cancel()
    job.wait(120)
    assert job.state == "cancelled"
    assert weights_bytes(model_copy) == before
    assert "Cancelled" in status_markdown(job.state, job.events, job.error)
    assert not loss_frame(job.events).empty and list(epoch_table(job.events).columns)[:2] == ["stage", "epoch"]
    assert trainer.cancel() == "No training is running."
