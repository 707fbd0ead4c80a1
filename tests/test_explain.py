"""Grad-CAM explanations: heat maps at the photo's size, that follow the evidence, without touching the shared model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from otter.cli import main
from otter.data.images import InvalidImage
from otter.model.explain import ExplainError, heatmap_at, overlay_image
from otter.model.predict import Predictor

SIZE = 128  # resnet18's last block is a 4x4 grid at 128 px: enough to tell quadrants apart (2x2 at 64 px is not)
CORNERS = ("tl", "tr", "bl", "br")


def corner_image(corner: str | None, seed: int, size: int = SIZE) -> Image.Image:
    """Grey noise, plus (unless `corner` is None) a bright square in the middle of that corner's quadrant."""
    rng = np.random.default_rng(seed)
    a = (rng.random((size, size, 3)) * 60 + 60).astype(np.uint8)
    if corner is not None:
        side = int(size * 0.35) + int(rng.integers(-2, 3))
        cy = size // 4 if corner[0] == "t" else 3 * size // 4
        cx = size // 4 if corner[1] == "l" else 3 * size // 4
        y, x = cy - side // 2 + int(rng.integers(-4, 5)), cx - side // 2 + int(rng.integers(-4, 5))
        a[y : y + side, x : x + side] = 255
    return Image.fromarray(a)


def quadrant_means(heat: np.ndarray) -> dict[str, float]:
    h, w = heat.shape[0] // 2, heat.shape[1] // 2
    return {
        "tl": float(heat[:h, :w].mean()),
        "tr": float(heat[:h, w:].mean()),
        "bl": float(heat[h:, :w].mean()),
        "br": float(heat[h:, w:].mean()),
    }


@pytest.fixture(scope="module")
def corner_model(tmp_path_factory) -> Path:
    """A resnet18 trained from scratch to tell "square" (a bright square in one of the four corners) from "plain".

    The corner varies within the class, so a heat map can only point at the right quadrant by following the square."""
    from otter.model.train import TrainConfig, train

    base = tmp_path_factory.mktemp("corners")
    for cls in ("square", "plain"):
        (base / "data" / cls).mkdir(parents=True)
    for i in range(16):
        corner_image(CORNERS[i % 4], i).save(base / "data" / "square" / f"s{i:02d}.png")
        corner_image(None, 1000 + i).save(base / "data" / "plain" / f"p{i:02d}.png")
    cfg = TrainConfig(pretrained=False, arch="resnet18", sizes=(SIZE,), epochs=4, bs=8, mixup=0.0, aug=0.0, lr=3e-3)
    return train(base / "data", cfg, base / "models" / "corners").model_dir


@pytest.fixture(scope="module")
def predictor(corner_model) -> Predictor:
    return Predictor.load(corner_model)


def test_heat_is_hottest_where_the_square_is(predictor):
    per_corner = {c: [] for c in CORNERS}
    for i in range(12):  # unseen images, three per corner
        corner = CORNERS[i % 4]
        e = predictor.explain(corner_image(corner, 5000 + i))
        assert e.target == "square"
        per_corner[corner].append(quadrant_means(e.heatmap))
    for corner, rows in per_corner.items():
        mean = {q: np.mean([r[q] for r in rows]) for q in CORNERS}
        assert max(mean, key=mean.get) == corner, f"square in {corner}, mean heat per quadrant {mean}"


def test_heatmap_has_the_photo_size_after_exif_rotation_and_values_in_0_1(predictor, tmp_path):
    photo = corner_image("tl", 7, size=160).resize((150, 90))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees, i.e. 90 wide and 150 high
    path = tmp_path / "sideways.jpg"
    photo.save(path, exif=exif)
    e = predictor.explain(path)
    assert e.heatmap.shape == (150, 90)
    assert e.heatmap.dtype == np.float32
    assert 0.0 <= e.heatmap.min() and e.heatmap.max() <= 1.0 and e.heatmap.max() > 0
    assert e.overlay.mode == "RGB" and e.overlay.size == (90, 150)
    assert set(e.probabilities) == {"plain", "square"}
    assert e.probabilities == pytest.approx(predictor.predict(path), abs=1e-5)


def test_explain_a_chosen_class(predictor):
    image = corner_image("br", 77)
    square, plain = predictor.explain(image, target="square"), predictor.explain(image, target="plain")
    assert (square.target, plain.target) == ("square", "plain")
    assert predictor.explain(image, target=predictor.classes.index("plain")).target == "plain"
    assert not np.allclose(square.heatmap, plain.heatmap)
    assert square.probabilities == pytest.approx(plain.probabilities)
    with pytest.raises(ExplainError, match="unknown class 'otter'"):
        predictor.explain(image, target="otter")
    with pytest.raises(ExplainError, match="out of range"):
        predictor.explain(image, target=5)


def test_explain_a_bad_image_raises_invalid_image(predictor, tmp_path):
    with pytest.raises(InvalidImage, match="not an image"):
        predictor.explain(b"this is not a picture")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InvalidImage, match="empty"):
        predictor.explain(tmp_path / "empty.jpg")


def test_explain_leaves_the_shared_model_as_it_was_while_predict_runs_beside_it(predictor):
    image, other = corner_image("tr", 11), corner_image(None, 12)
    before = predictor.predict(other)
    errors: list[BaseException] = []

    def predict_many():
        try:
            for _ in range(20):
                assert predictor.predict(other) == pytest.approx(before, abs=1e-6)
        except BaseException as ex:  # reported below, in the test's thread
            errors.append(ex)

    thread = threading.Thread(target=predict_many)
    thread.start()
    heat = [predictor.explain(image).heatmap for _ in range(5)]
    thread.join()
    assert not errors
    assert all(np.allclose(h, heat[0]) for h in heat)  # the same answer every time
    model = predictor.model
    assert not model.training
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert predictor.predict(other) == pytest.approx(before, abs=1e-6)


def test_heatmap_orientation_and_overlay_size():
    cam = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    heat = heatmap_at(cam, width=40, height=20)
    assert heat.shape == (20, 40)
    q = quadrant_means(heat)
    assert max(q, key=q.get) == "tl" and heat[0, 0] == pytest.approx(1.0)
    assert not heatmap_at(torch.zeros(3, 3), 7, 5).any()  # no positive evidence anywhere: all cold, no NaN
    photo = Image.new("RGB", (40, 20), "white")
    assert overlay_image(photo, heat).size == (40, 20)


def test_cli_writes_one_overlay_png_per_image(corner_model, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    corner_image("tl", 21).save(tmp_path / "a" / "shot 1.png")
    corner_image("br", 22).resize((100, 60)).save(tmp_path / "b" / "shot 1.jpg")  # same name, other folder
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out_dir = tmp_path / "out" / "overlays"
    images = [str(tmp_path / "a" / "shot 1.png"), str(tmp_path / "b" / "shot 1.jpg"), str(tmp_path / "broken.jpg")]
    code = main(["predict", "--model", str(corner_model), "--explain", str(out_dir), "--json", *images])
    assert code == 3  # every result printed, and one image could not be read
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r.get("overlay", "")).name for r in rows] == ["shot_1.png", "shot_1-2.png", ""]
    assert "error" in rows[2]
    assert sorted(p.name for p in out_dir.iterdir()) == ["shot_1-2.png", "shot_1.png"]
    with Image.open(out_dir / "shot_1-2.png") as im:
        assert (im.format, im.size) == ("PNG", (100, 60))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "broken.jpg", "out"]  # nothing written elsewhere


def test_cli_explain_into_a_file_is_a_one_line_error(corner_model, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file, not a folder")
    corner_image("tl", 31).save(tmp_path / "shot.png")
    code = main(["predict", "--model", str(corner_model), "--explain", str(tmp_path / "taken"), str(tmp_path / "shot.png")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot create the overlay folder") and len(err.strip().splitlines()) == 1
    assert (tmp_path / "taken").read_text() == "a file, not a folder"
