"""Honest numbers: a model records which images it trained and validated on, and evaluate says how many of the
evaluated images it had seen and scores the unseen ones apart; predict's exit code says when an image failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, made_photos, real_photos
from otter.cli import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, main
from otter.data.seen import HASH_CHARS, image_hash
from otter.model.evaluate import evaluate
from otter.model.io import META, read_meta
from otter.model.predict import Predictor


def _split_files(result) -> dict[str, list[Path]]:
    """The tiny model's training images by split ("train", "valid"); its review lists all 16."""
    data = Path(result.meta["dataset"]["path"])
    out = {"train": [], "valid": []}
    for r in result.meta["review"]:
        out[r["split"]].append(data / r["image"])
    return out


def _other_photos(dest: Path, per_class: int = 3) -> Path:
    """Photos the tiny model never saw (it trained on the first 8 of each class), shrunk as its own were."""
    for cls in ("river", "sea"):
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for p in made_photos(cls, 8 + per_class)[8:]:
            with Image.open(p) as im:
                im.convert("RGB").resize((64, 64)).save(dest / cls / p.name, quality=90)
    return dest


def test_training_records_the_hashes_of_its_training_and_validation_images(tiny_trained):
    model_dir, result = tiny_trained
    seen = read_meta(model_dir)["seen"]
    splits = _split_files(result)
    assert len(seen["train"]) == result.meta["dataset"]["n_train"] == len(splits["train"])
    assert len(seen["valid"]) == result.meta["dataset"]["n_valid"] == len(splits["valid"]) > 0
    assert all(len(h) == HASH_CHARS and int(h, 16) >= 0 for h in seen["train"] + seen["valid"])
    assert {image_hash(p) for p in splits["valid"]} == set(seen["valid"])
    assert not set(seen["train"]) & set(seen["valid"])


def test_evaluate_on_the_training_data_counts_every_image_as_seen(tiny_trained):
    model_dir, result = tiny_trained
    report = evaluate(Predictor.load(model_dir), result.meta["dataset"]["path"])
    assert report["seen"] == {
        "known": True,
        "n_train": result.meta["dataset"]["n_train"],
        "n_valid": result.meta["dataset"]["n_valid"],
        "n_unseen": 0,
        "unseen_accuracy": None,
    }


def test_evaluate_on_other_photos_scores_them_all_as_unseen(tiny_trained, tmp_path):
    report = evaluate(Predictor.load(tiny_trained[0]), _other_photos(tmp_path / "other"))
    assert report["n"] == 6
    assert report["seen"] == {
        "known": True,
        "n_train": 0,
        "n_valid": 0,
        "n_unseen": 6,
        "unseen_accuracy": report["accuracy"],
    }


def test_evaluate_on_a_mix_recognises_seen_images_by_their_bytes_and_scores_the_rest(tiny_trained, tmp_path, capsys):
    model_dir, result = tiny_trained
    data = _other_photos(tmp_path / "mix", per_class=2)
    splits = _split_files(result)
    for i, p in enumerate(splits["train"][:3] + splits["valid"][:1]):  # renamed: the bytes count, not the name
        shutil.copyfile(p, data / p.parent.name / f"copy{i}.jpg")
    predictor = Predictor.load(model_dir)
    report = evaluate(predictor, data)
    seen = report["seen"]
    assert (report["n"], seen["n_train"], seen["n_valid"], seen["n_unseen"]) == (8, 3, 1, 4)
    unseen = [p for p in data.rglob("*.jpg") if not p.name.startswith("copy")]
    right = [max(predictor.predict(p).items(), key=lambda kv: kv[1])[0] == p.parent.name for p in unseen]
    assert seen["unseen_accuracy"] == pytest.approx(sum(right) / 4)

    assert main(["evaluate", "--model", str(model_dir), str(data)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "warning: the model trained on 3 of these 8 images and validated on 1" in text
    assert f"accuracy on the 4 it never saw: {sum(right) / 4:.3f}" in text
    assert main(["evaluate", "--model", str(model_dir), "--json", str(data)]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["seen"] == seen


def test_a_model_without_the_record_still_evaluates_and_says_the_overlap_is_unknown(model_copy, tmp_path, capsys):
    meta = json.loads((model_copy / META).read_text())
    del meta["seen"]  # as every model trained before the record existed
    (model_copy / META).write_text(json.dumps(meta))
    data = _other_photos(tmp_path / "other", per_class=1)
    report = evaluate(Predictor.load(model_copy), data)
    assert report["n"] == 2 and report["seen"]["known"] is False and report["seen"]["reason"]
    assert main(["evaluate", "--model", str(model_copy), str(data)]) == EXIT_OK
    assert "which of these images the model trained on is unknown" in capsys.readouterr().out


def test_the_shipped_model_knows_it_trained_on_every_sample_photo(otters_dir, tmp_path):
    shipped = ROOT / "models" / "otters"
    data = tmp_path / "data"
    for cls in ("river", "sea"):  # two untouched sample photos and one re-encoded (new bytes: unseen)
        (data / cls).mkdir(parents=True)
        for p in real_photos(cls, 1):
            shutil.copy(p, data / cls / p.name)
    _other_photos(tmp_path / "other", per_class=1)
    shutil.copy(next((tmp_path / "other" / "sea").iterdir()), data / "sea" / "reencoded.jpg")
    report = evaluate(Predictor.load(shipped), data)
    assert report["n"] == 3
    assert report["seen"]["known"] is True and report["seen"]["n_train"] == 2 and report["seen"]["n_unseen"] == 1


# ------------------------------------------------------------------------------------ predict exit codes


def test_predict_prints_every_result_and_exits_non_zero_when_one_image_fails(tiny_trained, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + b"\0" * 40)
    good = [str(p) for p in made_photos("sea", 2)]
    model = ["--model", str(tiny_trained[0])]

    assert main(["predict", *model, good[0], str(broken), good[1]]) == EXIT_SOME_FAILED
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "error" in lines[1] and "broken.jpg" in lines[1]
    assert "error" not in lines[0] + lines[2] and lines[2].startswith(good[1])

    assert main(["predict", *model, "--json", good[0], str(tmp_path / "missing.jpg")]) == EXIT_SOME_FAILED
    out = json.loads(capsys.readouterr().out)
    assert "label" in out[0] and "no such file" in out[1]["error"]

    assert main(["predict", *model, "--json", str(tmp_path), good[0]]) == EXIT_SOME_FAILED
    assert "a folder, not an image file" in json.loads(capsys.readouterr().out)[0]["error"]

    assert main(["predict", *model, *good]) == EXIT_OK


def test_predict_without_a_model_or_with_bad_usage_has_its_own_exit_codes(tmp_path, capsys):
    photo = str(made_photos("sea", 1)[0])
    assert main(["predict", "--models", str(tmp_path / "empty"), photo]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as info:
        main(["predict", "--no-such-option", photo])
    assert info.value.code == EXIT_USAGE
    assert len({EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED}) == 4


def test_evaluate_on_a_folder_without_a_readable_image_says_so_in_one_line(tiny_trained, tmp_path, capsys):
    for cls in ("river", "sea"):
        (tmp_path / "bad" / cls).mkdir(parents=True)
        (tmp_path / "bad" / cls / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 40)
    assert main(["evaluate", "--model", str(tiny_trained[0]), str(tmp_path / "bad")]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: nothing to evaluate") and "none of the 2 images in river, sea could be read" in err
    assert "\n" not in err
