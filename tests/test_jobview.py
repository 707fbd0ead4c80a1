"""Train-tab views computed from a real training run's events and model.json."""

from __future__ import annotations

import threading

import pytest
from conftest import make_shapes

from otter.jobview import (
    ARCH_DEFAULT,
    confusion_figure,
    confusion_frame,
    epoch_table,
    loss_frame,
    lr_find_frame,
    parse_settings,
    per_class_frame,
    progress,
    status_markdown,
)
from otter.train import PRETRAINED_RECIPE, SCRATCH_RECIPE, TrainConfig, TrainError, train


def test_blank_settings_take_the_recipe_defaults():
    cfg = parse_settings(ARCH_DEFAULT, False, "", "", "", 32, 20)
    assert cfg.arch == SCRATCH_RECIPE["arch"] and cfg.sizes == SCRATCH_RECIPE["sizes"] and cfg.lr is None
    assert cfg.valid_pct == pytest.approx(0.2)
    cfg = parse_settings(ARCH_DEFAULT, True, " 64, 128 ", "2,3", "0.01", "16", 10)
    assert cfg.arch == PRETRAINED_RECIPE["arch"] and cfg.sizes == (64, 128) and cfg.epochs == (2, 3)
    assert cfg.lr == 0.01 and cfg.bs == 16 and cfg.valid_pct == pytest.approx(0.1)
    assert parse_settings("resnet18", True, "64", "3", "find", 8, 20).lr is None


@pytest.mark.parametrize(
    "field, args",
    [
        ("sizes", ("resnet18", True, "64,big", "", "", 8, 20)),
        ("learning rate", ("resnet18", True, "64", "", "fast", 8, 20)),
        ("epoch count", ("resnet18", True, "64,128", "1,2,3", "", 8, 20)),
        ("batch size", ("resnet18", True, "64", "", "", "many", 20)),
        ("validation", ("resnet18", True, "64", "", "", 8, 95)),
    ],
)
def test_bad_settings_name_the_field(field, args):
    with pytest.raises(TrainError, match=field):
        parse_settings(*args)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real 2-epoch run with lr_find: its events and model.json."""
    base = tmp_path_factory.mktemp("jobview")
    data = make_shapes(base / "shapes", per_class=10)
    events: list[dict] = []
    cfg = TrainConfig(pretrained=False, arch="resnet18", sizes=(32,), epochs=2, bs=8, lr=None, mixup=0.0)
    result = train(data, cfg, base / "models" / "m", on_event=events.append, cancel=threading.Event())
    return events, result.meta


def test_epoch_table_and_loss_curves_follow_the_events(run):
    events, meta = run
    table = epoch_table(events)
    assert list(table["epoch"]) == [1, 2] and table["valid_loss"].notna().all()
    losses = loss_frame(events)
    n_batches = sum(e["type"] == "batch" for e in events)
    assert (losses["series"] == "train (batch)").sum() == n_batches
    assert list(losses[losses["series"] == "valid (epoch)"]["loss"]) == pytest.approx(list(table["valid_loss"]), abs=1e-4)
    assert progress(events) == pytest.approx(1.0, abs=0.05)


def test_status_lines_for_each_state(run):
    events, meta = run
    running = [e for e in events if e["type"] in ("start", "stage", "batch")][:5]
    text = status_markdown("running", running)
    assert "Stage:" in text and "batch" in text and "%" in text
    assert "validation accuracy" in status_markdown("done", events) and "Predict uses it" in status_markdown("done", events)
    assert status_markdown("failed", events, "need at least two classes") == "**Training failed:** need at least two classes"
    assert "No training" in status_markdown(None, [])


def test_results_views_read_model_json(run):
    _, meta = run
    lr = lr_find_frame(meta)
    assert len(lr) > 5 and list(lr.columns) == ["log10_lr", "loss"]
    assert lr_find_frame({"lr_find": None}).empty
    assert list(per_class_frame(meta)["class"]) == meta["classes"]
    conf = confusion_frame(meta)
    assert conf.iloc[:, 1:].to_numpy().sum() == meta["metrics"]["n"]
    assert confusion_figure(meta) is not None and confusion_figure({}) is None
