"""The app as a client sees it: a real Gradio server on 127.0.0.1, called through gradio_client."""

from __future__ import annotations

import shutil

import pytest
from gradio_client import Client, handle_file
from servers import free_port, start_app, wait_for_port

from conftest import ROOT, made_photos, running_app
from otter.model.predict import Predictor


@pytest.fixture(scope="module")
def app_url(tiny_trained, tmp_path_factory):
    with running_app(tiny_trained[0], tmp_path_factory.mktemp("app"), max_file_size=2_000_000) as app:
        yield app["url"]


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_predict_endpoint_labels_a_photo(client, tiny_trained):
    classes = tiny_trained[1].meta["classes"]
    out = client.predict(handle_file(str(made_photos("sea", 1)[0])), api_name="/predict")
    assert out["label"] in classes
    confidences = {c["label"]: c["confidence"] for c in out["confidences"]}
    assert set(confidences) == set(classes) and abs(sum(confidences.values()) - 1) < 1e-4


def test_only_the_predict_endpoint_is_public(client):
    assert list(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == ["/predict"]


def test_bad_file_gives_a_clear_error_and_the_next_call_works(client, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_text("this is not a photo")
    with pytest.raises(Exception, match="holiday.jpg: not an image"):
        client.predict(handle_file(str(bad)), api_name="/predict")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(made_photos("river", 1)[0].read_bytes()[:2000])
    with pytest.raises(Exception, match="cut.jpg: broken or truncated"):
        client.predict(handle_file(str(truncated)), api_name="/predict")
    out = client.predict(handle_file(str(made_photos("river", 1)[0])), api_name="/predict")
    assert out["label"] in ("river", "sea")


def test_upload_over_max_file_size_is_refused(client, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(made_photos("sea", 1)[0].read_bytes() + b"\0" * 2_100_000)
    with pytest.raises(Exception, match="(?i)too large|exceed|size"):
        client.predict(handle_file(str(big)), api_name="/predict")
    out = client.predict(handle_file(str(made_photos("sea", 2)[1])), api_name="/predict")
    assert out["label"] in ("river", "sea")


def test_app_py_on_an_empty_models_folder_predicts_with_the_shipped_model(tiny_trained, tmp_path, monkeypatch):
    """`python app.py` as a Space runs it, with its folders in an empty Storage Bucket: the shipped model is
    copied in, and the first photo gets an answer. The repository is a copy with the shipped model and a newer
    model of the user's own beside it, so the test does not depend on what this clone keeps in models/."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "app.py", repo / "app.py")
    shutil.copytree(ROOT / "models" / "otters", repo / "models" / "otters")
    shutil.copytree(tiny_trained[0], repo / "models" / "mine")  # trained in the clone: newer, not the default
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # app.py imports otter from this tree
    port, bucket, log = free_port(), tmp_path / "bucket", tmp_path / "app.log"
    with open(log, "w") as out:
        proc = start_app(repo, str(bucket / "models"), port, data=str(bucket / "data"), log=out)
    try:
        wait_for_port(port, proc)
        photo = made_photos("sea", 1)[0]
        out = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(handle_file(str(photo)), api_name="/predict")
        shipped = Predictor.load(ROOT / "models" / "otters").predict(photo)  # the shipped model answered, not "mine"
        assert {c["label"]: c["confidence"] for c in out["confidences"]} == pytest.approx(shipped, abs=1e-4)
        assert [p.name for p in (bucket / "models").iterdir() if p.name != ".models.lock"] == ["otters"]
        assert "Traceback" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("photos", [0, 2], ids=["no-examples", "examples"])
def test_the_predict_api_is_the_first_event(tmp_path, photos):
    """Gradio's page takes "/predict"'s parameters for event 0's (`unnamed_endpoints[0]` in its client), so event 0
    must be "/predict" itself: another one there warns "Too many arguments provided for the endpoint" each time."""
    from conftest import make_small_set
    from otter.app.ui import build_app

    demo = build_app(make_small_set(tmp_path / "data", per_class=photos), tmp_path / "models")
    first = demo.config["dependencies"][0]
    assert first["api_name"] == "predict" and len(first["inputs"]) == 1
