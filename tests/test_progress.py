"""One progress protocol: every long job's events are `otter.progress.Event`s, and the command line prints them all
with one `Printer`."""

from __future__ import annotations

import io
from types import SimpleNamespace

from otter.model.events import TrainEvent
from otter.progress import Event, Printer, clock, items_event, parse_ints


def printed(events, quiet=False) -> tuple[str, Printer]:
    out = io.StringIO()  # not a terminal: no live lines, a line every tenth instead
    printer = Printer(quiet, stream=out)
    for e in events:
        printer(e)
    return out.getvalue(), printer


def test_training_names_stay_importable_and_are_the_one_event():
    assert TrainEvent is Event


def test_one_printer_prints_training_audit_embeddings_and_downloads():
    failed = SimpleNamespace(status="failed", reason="http 404", url="http://x/a.jpg", detail="")
    kept = SimpleNamespace(status="kept", reason="", url="http://x/b.jpg", detail="")
    text, printer = printed(
        [
            Event("start", n_train=8, n_valid=2, classes=("river", "sea")),
            Event("stage", stage="all layers, 64px"),
            Event("epoch", epoch=1, epochs=2, size=64, train_loss=0.5, accuracy=0.75, elapsed=65, eta=3700),
            Event("stage", stage="all layers, 32px", fold=1, folds=2),  # inside a fold: the fold line says it
            Event("fold", fold=2, folds=2, progress=0.5, eta=30),
            *(items_event("embed", done, 20, 0.0) for done in range(21)),
            items_event("download", 1, 2, 0.0, outcome=failed),
            items_event("download", 2, 2, 0.0, outcome=kept),
        ]
    )
    lines = text.splitlines()
    assert lines[:3] == ["training on 8 images, validating on 2; classes: river, sea", "== all layers, 64px", lines[2]]
    assert "epoch 1/2 64px  train_loss 0.5000  accuracy 0.7500  elapsed 1:05  eta 1:01:40" == lines[2]
    assert "all layers, 32px" not in text and "fold 2/2  50%  eta 0:30" in lines
    embed = [x for x in lines if "embeddings:" in x]
    assert len(embed) == 11 and embed[-1].startswith("  embeddings: 20/20 new images")  # 0%, 10%, ..., 100%
    assert "  http 404: http://x/a.jpg" in lines and lines[-1].startswith("  2/2  kept 1  failed 1  duplicates 0")
    assert printer.counts == {"failed": 1, "kept": 1}


def test_quiet_prints_nothing_but_still_counts_downloads():
    text, printer = printed([items_event("download", 1, 1, 0.0, outcome=SimpleNamespace(status="duplicate"))], quiet=True)
    assert text == "" and printer.counts["duplicate"] == 1


def test_clock_and_whole_numbers():
    assert [clock(None), clock(float("nan")), clock(59.9), clock(61), clock(3661)] == ["–", "–", "0:59", "1:01", "1:01:01"]
    assert parse_ints(" 64, 128,") == (64, 128) and parse_ints("") == ()


def test_time_left_counts_the_work_not_the_size_probe_before_it():
    # 100 s of the small pictures' size probe, then 10 s for half the counted work: about 10 s left, not 110
    import time

    import pytest

    from otter.model.run import TrainRun

    events = []
    run = TrainRun(events.append, None)
    now = time.monotonic()
    run.start, run.work_start = now - 110, now - 10
    run.total_work, run.done_work = 2.0, 1.0
    run.emit("batch")
    assert events[0].elapsed == pytest.approx(110, abs=1) and events[0].eta == pytest.approx(10, abs=1)
    run.work_start = None  # no probe: the time left is measured from the start
    run.emit("batch")
    assert events[1].eta == pytest.approx(110, abs=1)
