"""Calibrated confidence and 'not sure': temperature scaling, ECE, OOD detectors, and where they show up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import made_photos, make_shapes, shape_image
from otter.cli import main as cli_main
from otter.data.synthetic import FAMILIES, synthetic_images
from otter.model import calibrate, ood
from otter.model.evaluate import evaluate
from otter.model.predict import Predictor


def stripes_image(size: int = 48) -> Image.Image:
    a = np.zeros((size, size, 3), dtype=np.uint8)
    a[:, ::4] = (255, 255, 0)
    a[:, 1::4] = (0, 255, 0)
    return Image.fromarray(a)


def noise_image(size: int = 48, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def shapes_model(tmp_path_factory):
    """A tiny model on discs vs squares, with a validation split, so calibration and the detector are fitted."""
    from otter.model.train import TrainConfig, train

    base = tmp_path_factory.mktemp("shapes_model")
    data = make_shapes(base / "data", per_class=16)
    cfg = TrainConfig(
        pretrained=False, arch="resnet18", sizes=(32,), epochs=3, bs=8, mixup=0.0, valid_pct=0.25, ood_method="mahalanobis"
    )
    result = train(data, cfg, base / "models" / "shapes")
    return result.model_dir, data


# ------------------------------------------------------------------------------------------ calibration


def test_ece_of_a_hand_made_example():
    # Bin (0.6, 0.667]: confidences 0.62, 0.64 with 1 of 2 correct -> |0.5 - 0.63| = 0.13, weight 2/4.
    # Bin (0.933, 1]: confidences 0.95, 1.0, both correct -> |1 - 0.975| = 0.025, weight 2/4.
    probs = np.array([[0.62, 0.38], [0.36, 0.64], [0.95, 0.05], [0.0, 1.0]])
    y = np.array([0, 0, 0, 1])
    assert calibrate.ece(probs, y) == pytest.approx(0.5 * 0.13 + 0.5 * 0.025)
    # 50% sure and right half the time: perfectly calibrated
    assert calibrate.ece(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0, 1])) == pytest.approx(0.0)


def test_temperature_scaling_fixes_overconfident_logits_and_keeps_argmax():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    logits = rng.normal(0, 1, (400, 3))
    logits[np.arange(400), y] += 1.0  # ~55-60% accurate...
    logits *= 6  # ...but scaled to be far too sure
    t = calibrate.fit_temperature(logits, y)
    assert t > 2
    assert calibrate.nll(logits, y, t) < calibrate.nll(logits, y)
    assert (calibrate.softmax(logits, t).argmax(1) == logits.argmax(1)).all()
    assert calibrate.ece(calibrate.softmax(logits, t), y) < calibrate.ece(calibrate.softmax(logits), y)


def test_trained_model_stores_calibration_that_lowers_validation_nll(shapes_model):
    model_dir, _ = shapes_model
    meta = json.loads((model_dir / "model.json").read_text())
    cal = meta["calibration"]
    assert cal["nll_after"] <= cal["nll_before"] + 1e-9
    assert cal["n"] > 0 and 0 <= cal["ece_after"] <= 1
    assert Predictor.load(model_dir).temperature == pytest.approx(cal["temperature"])


# ------------------------------------------------------------------------------------------- detectors


def test_every_detector_separates_far_features_and_accepts_95_percent_of_validation():
    rng = np.random.default_rng(1)
    means = np.array([[3.0] * 8, [-3.0] * 8])
    y_tr, y_va = rng.integers(0, 2, 200), rng.integers(0, 2, 100)
    f_tr, f_va = means[y_tr] + rng.normal(0, 1, (200, 8)), means[y_va] + rng.normal(0, 1, (100, 8))
    f_out = rng.normal(0, 1, (50, 8)) * 0.3 + np.r_[3.0, -3.0, 3.0, -3.0, 3.0, -3.0, 3.0, -3.0]
    w = means.T / 3  # a linear "last layer": logits follow the class means
    for method in ("msp", "energy", "mahalanobis", "knn"):
        det = ood.fit_detector(method, 2, f_tr, y_tr, f_va, f_va @ w)
        known_va, _ = det.known(f_va, f_va @ w)
        assert known_va.mean() >= 0.95, method
        if method in ("mahalanobis", "knn"):  # only feature-space methods see these as unusual
            assert ood.auroc(det.scores(f_va, f_va @ w), det.scores(f_out, f_out @ w)) > 0.95, method


def test_none_class_score_uses_the_extra_output():
    det = ood.Detector("none_class", 2)
    logits = np.array([[5.0, 0.0, -5.0], [0.0, 0.0, 8.0]])
    s = det.scores(None, logits)
    assert s[1] > s[0]


def test_synthetic_families_are_reproducible_and_sized():
    photo = shape_image("disc", 0, 64)
    a = synthetic_images(len(FAMILIES), 40, seed=3, photos=[photo])
    b = synthetic_images(len(FAMILIES), 40, seed=3, photos=[photo])
    assert [f for f, _ in a] == list(FAMILIES)
    assert all(im.size == (40, 40) and im.mode == "RGB" for _, im in a)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for (_, x), (_, y) in zip(a, b))


# ------------------------------------------------------------------------------------- in the product


def test_clearly_different_images_are_flagged_and_in_class_images_are_not(shapes_model):
    model_dir, _ = shapes_model
    assert (model_dir / ood.OOD_TENSORS).is_file()
    pred = Predictor.load(model_dir)
    assert pred.detector is not None and pred.detector.method == "mahalanobis"
    fresh = [shape_image(k, 5000 + i) for k in ("disc", "square") for i in range(6)]
    results = pred.classify_batch(fresh + [stripes_image(), noise_image()])
    in_class, odd = results[:-2], results[-2:]
    assert np.mean([r["known"] for r in in_class]) >= 0.8
    assert [r["known"] for r in odd] == [False, False]
    assert "not sure (looks like none of: disc, square)" == odd[0]["message"]
    assert all(r["score"] > pred.detector.threshold for r in odd)
    # classify and predict agree on the probabilities: one calibrated softmax (batched and single
    # forwards differ in float rounding)
    assert pred.predict(fresh[0]) == pytest.approx(results[0]["probs"], abs=1e-5)


def test_cli_predict_json_has_known_and_text_says_not_sure(shapes_model, tmp_path, capsys):
    model_dir, data = shapes_model
    odd = tmp_path / "stripes.png"
    stripes_image().save(odd)
    disc = sorted((data / "disc").iterdir())[0]
    assert cli_main(["predict", "--json", "--model", str(model_dir), str(odd), str(disc)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["known"] is False and out[1]["known"] is True
    assert cli_main(["predict", "--model", str(model_dir), str(odd)]) == 0
    assert "not sure (looks like none of: disc, square)" in capsys.readouterr().out


def test_evaluate_reports_ece_and_unknown_rate(shapes_model):
    model_dir, data = shapes_model
    report = evaluate(Predictor.load(model_dir), data)
    assert 0 <= report["ece"] <= 1 and 0 <= report["ece_before"] <= 1
    assert 0 <= report["unknown_rate"] <= 0.5  # the model's own classes: mostly known
    assert 0 < report["ece_noise_floor"] < 1


def test_ece_noise_floor_is_what_a_calibrated_model_measures_and_shrinks_with_more_images():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 100)
    probs = np.stack([conf, 1 - conf], 1)
    floor = calibrate.ece_noise_floor(probs)
    # labels drawn from the model's own probabilities: perfectly calibrated, yet ECE is far from 0 on 100 images
    measured = [calibrate.ece(probs, (rng.random(100) > conf).astype(int)) for _ in range(300)]
    assert floor == pytest.approx(np.mean(measured), abs=0.015) and floor > 0.04
    big = np.repeat(probs, 20, axis=0)
    assert calibrate.ece_noise_floor(big) < floor / 3
    assert calibrate.ece_noise_floor(np.array([[1.0, 0.0]] * 5)) == pytest.approx(0.0)  # certain and always right


def test_model_without_validation_split_records_why_and_knows_everything(model_copy):
    # tiny_trained uses the default valid_pct; a model trained on everything records why nothing was fitted
    from otter.model.honest import fit_honesty

    pred = Predictor.load(model_copy)
    cal, rec, tensors = fit_honesty(pred.model, 2, 32, [stripes_image()], [0], [], [])
    assert rec["method"] is None and "no validation split" in rec["skipped"] and tensors == {}
    meta = dict(pred.meta, ood=rec, calibration=cal)
    bare = Predictor(pred.model, meta)
    assert bare.detector is None and bare.classify(noise_image())["known"] is True


def test_app_predict_view_and_api_say_not_sure_with_probabilities(shapes_model, tmp_path):
    from otter.app.service import ModelService
    from otter.app.ui import AppContext, predict_api, predict_view

    model_dir, data = shapes_model
    odd = tmp_path / "stripes.png"
    stripes_image().save(odd)
    ctx = AppContext(data, model_dir.parent, ModelService(model_dir.parent), trainer=None)
    label, info, keep_photo = predict_view(ctx, str(odd), None)
    assert label == "Not sure" and keep_photo
    assert info.startswith("This photo doesn't look like the classes this model knows (disc, square).")
    assert "disc" in info.split("Probabilities anyway:")[1]
    assert f"{label} {info}".lower().count("not sure") == 1  # said once: the heading, not again below it
    api = predict_api(ctx, str(odd))
    assert api["label"] == "Not sure: this doesn't look like the classes this model knows (disc, square)"
    assert {c["label"] for c in api["confidences"]} == {"disc", "square"}
    disc = sorted((data / "disc").iterdir())[0]
    assert predict_api(ctx, str(disc))["label"] in ("disc", "square")


def test_batch_view_says_not_sure_in_the_label_column_and_captions_each_photo(shapes_model, tmp_path):
    from otter.app.service import ModelService
    from otter.app.ui import AppContext, predict_many_view

    model_dir, data = shapes_model
    odd, bad = tmp_path / "stripes.png", tmp_path / "notes.png"
    stripes_image().save(odd)
    bad.write_text("not an image")
    disc = sorted((data / "disc").iterdir())[0]
    ctx = AppContext(data, model_dir.parent, ModelService(model_dir.parent), trainer=None)
    view = predict_many_view(ctx, [str(disc), str(odd), str(bad)], None)
    assert list(view.table["label"])[1:] == ["not sure", ""] and list(view.table["known"])[:2] == [True, False]
    assert view.table["label"][0] in ("disc", "square")
    assert view.photos == [(str(disc), f"{view.table['label'][0]} · {disc.name}"), (str(odd), "not sure · stripes.png")]
    assert view.note == "2 classified, 1 could not be read (see the error column)"
    assert Path(view.csv).read_text().splitlines()[2].startswith("stripes.png,not sure,")
    empty = predict_many_view(ctx, [], None)
    assert empty.table is None and empty.photos == [] and empty.csv is None


def test_none_of_these_output_trained_on_synthetic_negatives(tmp_path):
    from otter.model.train import TrainConfig, train

    data = make_shapes(tmp_path / "data", per_class=8)
    cfg = TrainConfig(
        pretrained=False,
        arch="resnet18",
        sizes=(32,),
        epochs=2,
        bs=8,
        mixup=0.0,
        valid_pct=0.25,
        negatives=1.0,
        ood_method="none_class",
    )
    model_dir = train(data, cfg, tmp_path / "models" / "m").model_dir
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["classes"] == ["disc", "square"] and meta["extra_outputs"] == 1
    assert meta["ood"]["method"] == "none_class" and not (model_dir / ood.OOD_TENSORS).exists()
    pred = Predictor.load(model_dir)
    res = pred.classify(noise_image())
    assert set(res["probs"]) == {"disc", "square"} and sum(res["probs"].values()) == pytest.approx(1)
    assert res["score"] is not None


def test_none_output_is_moved_after_the_real_classes():
    # fastai sorts the vocabulary, so "__none_of_these__" comes first; the saved model must have it last
    from types import SimpleNamespace

    import torch

    from otter.model.train import NONE_CLASS, none_last

    last = torch.nn.Linear(4, 3)
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Sequential(torch.nn.Flatten(), last))
    before = last.weight.detach().clone(), last.bias.detach().clone()
    none_last(SimpleNamespace(dls=SimpleNamespace(vocab=[NONE_CLASS, "disc", "square"]), model=model))
    assert torch.equal(last.weight, before[0][[1, 2, 0]]) and torch.equal(last.bias, before[1][[1, 2, 0]])


def test_features_for_the_not_sure_test_work_in_either_precision(tiny_trained):
    from otter.model.honest import features_logits

    photos = made_photos("sea", 2) + made_photos("river", 1)
    out = {}
    for precision in ("fp32", "bf16"):
        pred = Predictor.load(tiny_trained[0], precision=precision)
        out[precision] = features_logits(pred.model, photos, pred.size)
        assert out[precision][0].shape[0] == 3 and out[precision][1].shape == (3, 2)
        assert np.isfinite(out[precision][0]).all()
    assert np.allclose(out["bf16"][1], out["fp32"][1], atol=0.1)
