"""Owners and visitors in a real browser: side by side in two browser contexts, through Gradio's login
(OTTER_AUTH) and through "Sign in with Hugging Face" (a test server whose OAuth profile is fixed); and a class
named like an HTML tag, trained on, shows as text in every tab without running anything."""

from __future__ import annotations

import shutil
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import made_photos, make_small_set, serving
from otter.app.owners import SIGN_IN_LINE, Access, access_from_env

pytestmark = [pytest.mark.browser]
CURATE_TOOLS = "#curate-class"


@contextmanager
def two_contexts():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            pages = []
            for _ in range(2):
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                page.set_default_timeout(60_000)
                pages.append(page)
            yield pages
        finally:
            browser.close()


def predicts(page) -> None:
    """A visitor and an owner both predict: a photo in, a label out."""
    page.get_by_role("tab", name="Predict").click()
    page.locator("#predict-image input[type=file]").set_input_files(str(made_photos("sea", 1)[0]))
    expect(page.locator("#predict-info")).to_contain_text("Model")


def sees_owner_tools(page, owner: bool, line: str) -> None:
    page.get_by_role("tab", name="Curate").click()
    if owner:
        expect(page.locator(CURATE_TOOLS)).to_be_visible()
        expect(page.locator("#curate-visitor")).to_be_hidden()
        expect(page.locator("#curate-counts")).to_contain_text("river")
    else:
        expect(page.locator("#curate-visitor")).to_contain_text(line)
        expect(page.locator(CURATE_TOOLS)).to_be_hidden()
        expect(page.locator("#curate-counts")).to_be_hidden()
    page.get_by_role("tab", name="Train").click()
    if owner:
        expect(page.locator("#train-start")).to_be_visible()
    else:
        expect(page.locator("#train-visitor")).to_contain_text(line)
        expect(page.locator("#train-start")).to_be_hidden()


@pytest.fixture
def served(tiny_trained, tmp_path):
    data = make_small_set(tmp_path / "data", per_class=3, size=48)
    shutil.copytree(tiny_trained[0], tmp_path / "models" / "tiny")
    return data, tmp_path / "models"


def test_gradio_login_owner_and_visitor_side_by_side(served):
    access = access_from_env({"OTTER_AUTH": "ann:ann-pass,bob:bob-pass", "OTTER_OWNERS": "ann"}, "127.0.0.1")
    with serving(*served, access=access) as url, two_contexts() as (ann, bob):
        for page, user in ((ann, "ann"), (bob, "bob")):
            page.goto(url)
            page.get_by_label("username").fill(user)
            page.get_by_label("password").fill(f"{user}-pass")
            page.get_by_role("button", name="Login").click()
        sees_owner_tools(ann, True, "")
        sees_owner_tools(bob, False, access.refusal())
        predicts(bob)
        predicts(ann)


def test_hugging_face_sign_in_makes_the_owner(served, fixed_oauth):
    access = Access("space", frozenset({"ann"}))
    with serving(*served, access=access) as url, two_contexts() as (ann, visitor):
        visitor.goto(url)
        ann.goto(url)
        fixed_oauth.user = "ann"
        ann.get_by_role("button", name="Sign in with Hugging Face").click()
        expect(ann.get_by_role("button", name="Logout (ann)")).to_be_visible()
        sees_owner_tools(ann, True, "")
        sees_owner_tools(visitor, False, SIGN_IN_LINE)
        predicts(visitor)


HOSTILE = "<img src=x onerror=alert(1)>"


def test_a_class_named_like_an_html_tag_shows_as_text_everywhere(tmp_path):
    from otter.model.train import TrainConfig, train

    data = make_small_set(tmp_path / "data", per_class=6, size=48)
    (data / "river").rename(data / HOSTILE)
    cfg = TrainConfig(pretrained=False, arch="resnet18", sizes=(32,), epochs=1, bs=8, mixup=0.0)
    train(data, cfg, tmp_path / "models" / "tiny")
    dialogs = []
    with serving(data, tmp_path / "models") as url, two_contexts() as (page, _):
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        predicts(page)  # the photo's label and probabilities name the class
        expect(page.locator("#predict-label")).to_contain_text(HOSTILE)
        page.get_by_role("tab", name="Curate").click()
        expect(page.locator("#curate-counts")).to_contain_text(HOSTILE)
        page.get_by_role("tab", name="Review").click()  # its model is the newest one, tiny
        expect(page.locator("#review-keys")).to_contain_text(HOSTILE)
        page.get_by_role("tab", name="Train").click()
        expect(page.locator("#train-results")).to_contain_text("tiny")
        page.wait_for_timeout(500)
        assert page.locator("img[src='x']").count() == 0
    assert dialogs == []
