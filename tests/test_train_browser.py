"""The Train tab in a real browser. Models: delete a model, see it in the models trash, restore it (and, when its name was
taken meanwhile, a one-line refusal, then a restore under another name), and it is back in the models list. A Train tab open before another visitor starts a training follows that training."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect

from conftest import browser_page, running_app, weights_bytes

pytestmark = [pytest.mark.browser]


def pick(page, box: str, option: str) -> None:
    page.locator(f"{box} input").click()
    page.get_by_role("option", name=option).click()


def test_delete_a_model_see_it_in_the_trash_and_restore_it(tiny_trained, tmp_path):
    with running_app(tiny_trained[0], tmp_path) as app:
        models = app["models"]
        shutil.copytree(models / "tiny", models / "other")
        before = weights_bytes(models / "other")
        with browser_page(app["url"]) as page:
            page.get_by_role("tab", name="Train").click()
            page.get_by_text("Models", exact=True).click()
            table, trash = page.locator("#models-table"), page.locator("#models-trash")
            expect(table).to_contain_text("other")
            expect(trash).to_contain_text("The models trash is empty")

            pick(page, "#models-pick", "other")
            page.locator("#models-delete").click()
            message = page.locator("#models-message")
            expect(message).to_contain_text("Moved model other to the models trash")
            assert not (models / "other").exists()
            expect(table).not_to_contain_text("other")
            expect(trash).to_contain_text("1 model in the models trash")
            trashed = re.compile(r"^other \(trashed \d{4}-\d\d-\d\d \d\d:\d\d UTC\)$")
            expect(page.locator("#models-trash-pick input")).to_have_value(trashed)

            shutil.copytree(models / "tiny", models / "other")  # the name is taken meanwhile
            page.locator("#models-restore").click()
            expect(message).to_contain_text("Not restored: a model named other exists")
            assert weights_bytes(models / "other") == weights_bytes(models / "tiny")
            shutil.rmtree(models / "other")

            page.locator("#models-restore-as input, #models-restore-as textarea").first.fill("other-2")
            page.locator("#models-restore").click()
            expect(message).to_contain_text("Restored model other-2")
            expect(table).to_contain_text("other-2")
            expect(trash).to_contain_text("The models trash is empty")
            assert weights_bytes(models / "other-2") == before
            page.get_by_role("tab", name="Predict").click()  # and Predict may use it
            page.locator("#model-picker input").click()
            expect(page.get_by_role("option", name="other-2")).to_have_count(1)


def test_a_train_tab_opened_before_another_visitor_starts_a_training_shows_it(tiny_trained, tmp_path):
    """It said "No training has run since the server started" during the whole run (its timer never started)."""
    from test_browser import start_training

    with running_app(tiny_trained[0], tmp_path, per_class=8, size=64) as app, browser_page(app["url"]) as watcher:
        watcher.get_by_role("tab", name="Train").click()
        status = watcher.locator("#train-status")
        # No job yet, or an earlier test's (the job is the process's): none running.
        expect(status).to_contain_text(re.compile("No training has run|Cancelled|Done|failed"))
        other = watcher.context.browser.new_page()  # another visitor (an owner too: the app is local)
        other.goto(app["url"])
        start_training(other, epochs=500, name="elsewhere")
        other.locator("#train-message").filter(has_text="Started training").wait_for()
        expect(status).to_contain_text("Training…", timeout=60_000)
        expect(watcher.locator("#train-model-name input, #train-model-name textarea").first).to_have_value("elsewhere")
        expect(watcher.locator("#train-cancel")).to_be_enabled()
        watcher.locator("#train-cancel").click()
        expect(status).to_contain_text("Cancelled", timeout=120_000)
        expect(other.locator("#train-status")).to_contain_text("Cancelled", timeout=120_000)
