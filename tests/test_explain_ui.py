"""Predict › "Show where the model looked": the view function without Gradio, then the panel in a real browser."""

from __future__ import annotations

import shutil

import pytest
from servers import free_port

from conftest import made_photos, make_small_set
from otter.app.service import ModelService
from otter.app.ui_explain import MAX_SIDE, explain_view, review_image_path
from otter.data.safepath import UnsafePath
from otter.model.predict import Predictor

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 240_000


@pytest.fixture
def models(model_copy) -> ModelService:
    return ModelService(model_copy.parent)


def test_view_explains_the_top_class_then_a_chosen_one(models, model_copy):
    photo = str(made_photos("sea", 2)[1])
    top = max((probs := Predictor.load(model_copy).predict(photo)), key=probs.get)
    other = next(c for c in ("river", "sea") if c != top)
    res = explain_view(models, photo, None)
    assert res.target == top and res.classes == ["river", "sea"]
    assert res.overlay is not None and max(res.overlay.size) <= MAX_SIDE
    assert f"**{top}**" in res.note
    chosen = explain_view(models, photo, "tiny", other)
    assert chosen.target == other and f"**{other}**" in chosen.note
    assert explain_view(models, photo, None, "no such class").target == top


def test_view_turns_problems_into_a_note(models, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    res = explain_view(models, str(bad), None)
    assert res.overlay is None and res.note.startswith("⚠️") and "not an image" in res.note
    assert explain_view(models, None, None).note == ""
    empty = explain_view(ModelService(tmp_path / "no-models"), str(made_photos("sea", 1)[0]), None)
    assert empty.overlay is None and "⚠️" in empty.note
    quiet = explain_view(models, str(bad), None, say_problems=False)  # Predict's own answer says it: said once
    assert quiet.overlay is None and quiet.note == ""


def test_review_item_path_stays_inside_the_data_folder(tmp_path):
    rels = ["sea/a.jpg", "../outside.jpg", "sea/../../x.jpg"]
    assert review_image_path(tmp_path, rels, 0) == str(tmp_path / "sea" / "a.jpg")
    assert review_image_path(tmp_path, rels, 2) is None and review_image_path(tmp_path, rels, 9) is None
    with pytest.raises(UnsafePath):
        review_image_path(tmp_path, rels, 1)


# ------------------------------------------------------------------------------------------- browser


@pytest.mark.browser
def test_toggle_shows_the_overlay_in_predict_and_review(tiny_trained, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from otter.app.ui import build_app, launch

    calls = []
    original = Predictor.explain
    monkeypatch.setattr(Predictor, "explain", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    data = make_small_set(tmp_path / "data", per_class=8, size=64)  # the model's training photos: Review lists them
    shutil.copytree(tiny_trained[0], tmp_path / "models" / "tiny")
    demo = build_app(data, tmp_path / "models")
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#predict-image input[type=file]").set_input_files(str(made_photos("river", 3)[2]))
            page.locator("#predict-info").filter(has_text="Model").wait_for(timeout=TIMEOUT_MS)
            assert not page.locator("#explain-image").is_visible()
            assert calls == []  # toggle off: no explanation computed

            page.locator("#explain-toggle input").check()
            note = page.locator("#explain-note")
            note.filter(has_text="Where the model looked for").wait_for(timeout=TIMEOUT_MS)
            page.locator("#explain-image img").wait_for(timeout=TIMEOUT_MS)
            first = "river" if "**river**" in note.inner_text() or "for river" in note.inner_text() else "sea"
            other = "sea" if first == "river" else "river"
            page.locator("#explain-class").get_by_label(other).check()
            note.filter(has_text=f"for {other}").wait_for(timeout=TIMEOUT_MS)
            assert len(calls) == 2

            # Curate › Review: click a hard image with the toggle on.
            page.get_by_role("tab", name="Curate").click()
            page.get_by_role("tab", name="Review").click()
            page.locator("#review-explain-toggle input").check()
            page.locator("#review-explain-note").filter(has_text="Click an image").wait_for(timeout=TIMEOUT_MS)
            page.locator(".thumbnail-item:visible").first.click()
            page.locator("#review-explain-note").filter(has_text="Where the model looked for").wait_for(timeout=TIMEOUT_MS)
            page.locator("#review-explain-image img").wait_for(timeout=TIMEOUT_MS)
            assert len(calls) == 3
            browser.close()
    finally:
        demo.close()


@pytest.mark.browser
def test_clicking_a_class_in_the_answer_explains_that_class(tiny_trained, tmp_path):
    """The README says so; the click did nothing (only the radio below the overlay worked)."""
    from playwright.sync_api import expect

    from conftest import browser_page, serving

    shutil.copytree(tiny_trained[0], tmp_path / "models" / "tiny")
    with serving(tmp_path / "data", tmp_path / "models") as url, browser_page(url) as page:
        page.locator("#predict-image input[type=file]").set_input_files(str(made_photos("river", 3)[2]))
        page.locator("#predict-info").filter(has_text="Model").wait_for(timeout=TIMEOUT_MS)
        note, toggle = page.locator("#explain-note"), page.locator("#explain-toggle input")
        expect(toggle).not_to_be_checked()
        for cls in ("sea", "river"):
            page.locator(f'#predict-label [data-testid="{cls}-confidence-set"]').click()
            expect(note).to_contain_text(f"Where the model looked for {cls}", timeout=TIMEOUT_MS)
            expect(toggle).to_be_checked()
            expect(page.locator("#explain-class input[type=radio]:checked")).to_have_value(cls)
        expect(page.locator("#explain-image img")).to_be_visible()
