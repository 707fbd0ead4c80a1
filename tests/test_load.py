"""Load on a real server: 50 concurrent predict requests, and predictions while a training job runs."""

from __future__ import annotations

import threading

import pytest
from gradio_client import Client, handle_file
from servers import fire

from conftest import made_photos, make_shapes, running_app
from otter.app.service import ModelService
from otter.model.io import weight_files
from otter.model.predict import Predictor
from otter.model.train import TrainConfig, TrainJob


@pytest.fixture(scope="module")
def served(tiny_trained, tmp_path_factory):
    base = tmp_path_factory.mktemp("load")
    with running_app(tiny_trained[0], base) as app:
        yield app["url"], base


def expected_label(model_dir, path) -> str:
    """What the library says the page should show: the top class, or the "Not sure" sentence."""
    return ModelService(model_dir.parent).predict(path, model_dir.name).label_data()["label"]


def test_fifty_concurrent_predictions_all_answered_correctly(served, tiny_trained):
    url, _ = served
    images = made_photos("sea", 5) + made_photos("river", 5)
    predictor = Predictor.load(tiny_trained[0])
    latencies, answers = fire(url, images, 50, 10)
    assert len(answers) == 50 and all(a is not None for a in answers)
    for i, answer in enumerate(answers):
        path = images[i % len(images)]
        assert answer["label"] == expected_label(tiny_trained[0], path)
        confidences = {c["label"]: c["confidence"] for c in answer["confidences"]}
        assert confidences == pytest.approx(predictor.predict(path), abs=1e-3)


def test_prediction_during_training_uses_the_current_model(served, tiny_trained):
    url, base = served
    data = make_shapes(base / "shapes", per_class=10)
    cfg = TrainConfig(pretrained=False, arch="resnet18", sizes=(32,), epochs=200, bs=4, mixup=0.0)
    started = threading.Event()

    class Watch(list):
        def append(self, e):
            super().append(e)
            if e.type == "batch":
                started.set()

    job = TrainJob(data, base / "models" / "tiny", cfg)  # will replace "tiny" only when it finishes
    job.events = Watch()
    job.start()
    try:
        assert started.wait(120)
        photo = made_photos("river", 2)[1]
        answer = Client(url, verbose=False).predict(handle_file(str(photo)), api_name="/predict")
        assert answer["label"] == expected_label(tiny_trained[0], photo)
        assert job.running, "the training job was still running during the request"
    finally:
        job.cancel()
        job.wait(120)
    assert job.state == "cancelled"


def test_bad_input_corpus_through_the_app_api(served, tmp_path):
    """Each hostile file gets a prediction or a one-line error from /predict, and the server keeps answering."""
    from test_reliability import bad_input_corpus

    url, _ = served
    client = Client(url, verbose=False)
    for name, (data, ok) in bad_input_corpus(made_photos("sea", 1)[0]).items():
        path = tmp_path / name
        path.write_bytes(data)
        if ok:
            answer = client.predict(handle_file(str(path)), api_name="/predict")
            assert answer["confidences"], name
        else:
            with pytest.raises(Exception) as info:
                client.predict(handle_file(str(path)), api_name="/predict")
            message = str(info.value)
            assert name in message and "Traceback" not in message, message
        assert client.predict(handle_file(str(made_photos("river", 1)[0])), api_name="/predict")["confidences"]


def test_corrupt_model_gives_a_clear_error_not_a_crash(tiny_trained, tmp_path):
    """The app starts with a broken model folder and says what is wrong; a repaired model then answers."""
    base = tmp_path / "broken"
    with running_app(tiny_trained[0], base) as app:
        weights = weight_files(app["models"] / "tiny")[-1]
        good = weights.read_bytes()
        weights.write_bytes(b"\x00" * 64)
        client = Client(app["url"], verbose=False)
        with pytest.raises(Exception, match="safetensors") as info:
            client.predict(handle_file(str(made_photos("sea", 1)[0])), api_name="/predict")
        assert "Traceback" not in str(info.value)
        weights.write_bytes(good)
        assert client.predict(handle_file(str(made_photos("sea", 1)[0])), api_name="/predict")["confidences"]
