"""Train-tab views computed from a real training run's events and model.json."""

from __future__ import annotations

import re
import threading

import pytest

from conftest import make_shapes
from otter.app.jobview import (
    ARCH_DEFAULT,
    confusion_figure,
    confusion_frame,
    epoch_table,
    form_values,
    loss_figure,
    loss_frame,
    lr_find_frame,
    parse_settings,
    per_class_frame,
    progress,
    progress_html,
    status_markdown,
)
from otter.model.events import JobEnded, TrainEvent
from otter.model.train import PRETRAINED_RECIPE, SCRATCH_RECIPE, TrainConfig, TrainError, train


def test_blank_settings_take_the_recipe_defaults():
    cfg = parse_settings(ARCH_DEFAULT, False, "", "", "", 32, 20)
    assert cfg.arch == SCRATCH_RECIPE["arch"] and cfg.sizes == SCRATCH_RECIPE["sizes"] and cfg.lr == SCRATCH_RECIPE["lr"]
    assert parse_settings(ARCH_DEFAULT, True, "", "", "", 32, 20).lr == PRETRAINED_RECIPE["lr"]
    assert parse_settings(ARCH_DEFAULT, True, "", "", "find", 32, 20).lr is None
    assert cfg.valid_pct == pytest.approx(0.2)
    cfg = parse_settings(ARCH_DEFAULT, True, " 64, 128 ", "2,3", "0.01", "16", 10)
    assert cfg.arch == PRETRAINED_RECIPE["arch"] and cfg.sizes == (64, 128) and cfg.epochs == (2, 3)
    assert cfg.lr == 0.01 and cfg.bs == 16 and cfg.valid_pct == pytest.approx(0.1)
    assert parse_settings("resnet18", True, "64", "3", "find", 8, 20).lr is None
    # A blank batch size is the recipe's: smaller for the pretrained network, which needs more memory per image.
    assert parse_settings(ARCH_DEFAULT, True, "", "", "", None, 20).bs == PRETRAINED_RECIPE["bs"] == 16
    assert parse_settings(ARCH_DEFAULT, False, "", "", "", "", 20).bs == SCRATCH_RECIPE["bs"] == 32


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
    """A real 2-epoch run: its events and model.json (lr given: lr_find alone takes minutes on 2 shared cores)."""
    base = tmp_path_factory.mktemp("jobview")
    data = make_shapes(base / "shapes", per_class=10)
    events: list[TrainEvent] = []
    cfg = TrainConfig(pretrained=False, arch="resnet18", sizes=(32,), epochs=2, bs=8, lr=3e-3, mixup=0.0)
    result = train(data, cfg, base / "models" / "m", on_event=events.append, cancel=threading.Event())
    return events, result.meta


def test_epoch_table_and_loss_curves_follow_the_events(run):
    events, meta = run
    assert all(isinstance(e, TrainEvent) for e in events) and events[0].type == "start" and events[-1].type == "done"
    table = epoch_table(events)
    assert list(table["epoch"]) == [1, 2] and table["valid_loss"].notna().all()
    losses = loss_frame(events)
    n_batches = sum(e.type == "batch" for e in events)
    assert (losses["series"] == "train (batch)").sum() == n_batches
    assert list(losses[losses["series"] == "valid (epoch)"]["loss"]) == pytest.approx(list(table["valid_loss"]), abs=1e-4)
    assert progress(events) == pytest.approx(1.0, abs=0.05)
    fig = loss_figure(events)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train (batch)", "valid (epoch)"]
    assert fig.axes[0].get_title() == "Loss"  # the figure names itself: the Plot's label badge hid the top tick
    assert loss_figure([]) is None


def test_form_values_and_progress_bar_of_a_job():
    cfg = parse_settings(ARCH_DEFAULT, False, "32,64", "2,3", "", "", 10)
    values = form_values(cfg, "m")
    assert values == {
        "arch": "xresnet18",
        "pretrained": False,
        "sizes": "32,64",
        "epochs": "2,3",
        "lr": "0.003",
        "bs": "32",
        "valid": 10,
        "model_name": "m",
    }
    # What the form shows parses back to the same settings.
    again = parse_settings(*(values[k] for k in ("arch", "pretrained", "sizes", "epochs", "lr", "bs", "valid")))
    assert again == cfg
    assert form_values(parse_settings(ARCH_DEFAULT, True, "", "", "find", "", 20), "n")["lr"] == "find"
    events = [TrainEvent("batch", progress=0.376)]
    assert 'value="38"' in progress_html("running", events) and "<progress" in progress_html("running", events)
    assert progress_html("done", events) == "" and progress_html(None, []) == ""


def test_status_lines_for_each_state(run):
    events, meta = run
    running = [e for e in events if e.type in ("start", "stage", "batch")][:5]
    text = status_markdown("running", running)
    assert "Stage:" in text and "batch" in text and "%" in text
    done = status_markdown("done", [*events, JobEnded("done")])  # TrainJob adds the job's end
    first, *more = done.split("  \n")
    assert re.match(r"\*\*Done\*\* in \d+:\d\d, validation accuracy \*\*\d+\.\d%\*\*\. Saved as model \*\*m\*\*\.$", first), done
    # which stage's state was kept, and whether a temperature was fitted (issue 24)
    assert more[0].startswith("kept ") and meta["kept"]["stage"] in more[0] and "validation split" in more[0], done
    assert more[1].startswith("calibration: "), done
    assert status_markdown("failed", events, "need at least two classes") == "**Training failed:** need at least two classes"
    assert "No training" in status_markdown(None, [])


def test_results_views_read_model_json(run):
    _, meta = run
    assert meta["lr_find"] is None and lr_find_frame(meta).empty
    # What train() records when the learning rate is found (model.json "lr_find").
    found = {"lr_find": {"suggestion": 1e-3, "lrs": [1e-5, 1e-4, 1e-3, 1e-2, 0.0], "losses": [0.7, 0.69, 0.6, float("nan"), 0.5]}}
    lr = lr_find_frame(found)
    assert list(lr["log10_lr"]) == pytest.approx([-5, -4, -3]) and list(lr["loss"]) == pytest.approx([0.7, 0.69, 0.6])
    assert list(per_class_frame(meta)["class"]) == meta["classes"]
    conf = confusion_frame(meta)
    assert conf.iloc[:, 1:].to_numpy().sum() == meta["metrics"]["n"]
    assert confusion_figure(meta) is not None and confusion_figure({}) is None


@pytest.mark.parametrize("classes", [["river", "sea"], ["a", "b", "c", "d", "e"]])
def test_the_confusion_matrix_title_fits_in_its_figure(classes):
    meta = {"classes": classes, "confusion": [[i + j for j in range(len(classes))] for i in range(len(classes))]}
    fig = confusion_figure(meta)
    fig.canvas.draw()
    title, margin = fig.axes[0].title.get_window_extent(), 0.03 * fig.bbox.width  # 2 classes: 2.5 px to spare was cut
    assert margin <= title.x0 and title.x1 <= fig.bbox.x1 - margin and title.y1 <= fig.bbox.y1, (title, fig.bbox)
