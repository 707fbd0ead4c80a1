"""Look-alikes in a real browser: in Curate › Images, a click on an image lists the images most like it (the
embeddings computed first, the cache being cold); in Curate › Duplicates, find look-alikes, click a pair filed
under two classes, trash one image of it, then restore it from the Trash."""

from __future__ import annotations

import re

import pytest
from PIL import Image, ImageOps

from conftest import browser_page, captions_cut, made_photos, serving

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
]
TIMEOUT_MS = 180_000  # the search computes the embeddings of a few photos first


@pytest.fixture(scope="module")
def app(tmp_path_factory):

    base = tmp_path_factory.mktemp("lookalikes-browser")
    data = base / "data"
    for cls in ("river", "sea"):
        (data / cls).mkdir(parents=True)
        for p in made_photos(cls, 6):
            with Image.open(p) as im:
                im.convert("RGB").resize((160, 120)).save(data / cls / p.name, quality=90)
    with Image.open(data / "river" / made_photos("river", 1)[0].name) as im:
        ImageOps.mirror(im).save(data / "sea" / "mirrored.jpg", quality=85)  # a copy filed under the other class
    with serving(data, base / "models") as url:
        yield {"url": url, "data": data}


@pytest.fixture(scope="module")
def page(app):
    with browser_page(app["url"], height=1100) as page:
        yield page


def test_clicking_an_image_lists_its_planted_copy_first_and_a_click_selects_it(app):
    """Runs first in this module: the embeddings are not computed yet, so with the box ticked the click starts
    computing them."""
    from playwright.sync_api import expect

    name = made_photos("river", 1)[0].name
    assert not (app["data"] / ".otter").exists()
    with browser_page(app["url"], height=1100) as page:
        page.get_by_role("tab", name="Curate").click()
        expect(page.locator("#curate-class input")).to_have_value("river", timeout=60_000)
        page.locator("#curate-similar-on input").check()
        line = page.locator("#curate-similar-line")
        expect(line).to_contain_text("Click an image to see the images most like it")
        page.locator("#curate-gallery button.thumbnail-item", has=page.locator(f"img[alt='{name}']")).click()
        expect(line).to_contain_text(re.compile("Computing embeddings|Looking at the images"))  # and says so
        expect(line).to_contain_text(f"More like river/{name}, most similar first", timeout=TIMEOUT_MS)
        expect(line).not_to_contain_text("Computing embeddings")
        first = page.locator("#curate-similar button.thumbnail-item").first
        expect(first.locator("img")).to_have_attribute(
            "alt", re.compile(r"^sea/mirrored\.jpg · 0\.9\d$")
        )  # class/file · similarity
        assert captions_cut(page, "#curate-similar") == []  # the similarity was cut off ("sea/00000031.jp…")
        first.click()
        expect(page.locator("#curate-selected")).to_contain_text("sea/mirrored.jpg")


def test_click_a_lookalike_pair_trash_one_image_and_restore_it(page, app):
    from playwright.sync_api import expect

    data = app["data"]
    original = f"river/{made_photos('river', 1)[0].name}"
    copy = data / "sea" / "mirrored.jpg"
    before = copy.read_bytes()
    page.get_by_role("tab", name="Curate").click()
    page.get_by_role("tab", name="Duplicates").click()
    page.locator("#dup-find").click()
    # The pair filed under two classes comes first.
    page.locator('#dup-pairs [data-testid="cell-0-2"]').filter(has_text="sea/mirrored.jpg").wait_for(timeout=TIMEOUT_MS)
    page.locator('#dup-pairs [data-testid="cell-0-0"]').click()
    page.locator("#dup-left").filter(has_text=original).wait_for()
    page.locator("#dup-right").filter(has_text="sea/mirrored.jpg").wait_for()
    page.locator("#dup-trash-right").click()
    page.locator("#dup-status").filter(has_text="Moved to the trash 1 image: sea/mirrored.jpg").wait_for()
    assert not copy.exists() and (data / original).is_file()
    expect(page.locator("#dup-pairs").get_by_text("sea/mirrored.jpg")).to_have_count(0)

    page.get_by_role("tab", name="Trash").click()
    page.locator("#trash-gallery button.thumbnail-item", has=page.locator("img[alt='sea/mirrored.jpg']")).click()
    page.locator("#trash-restore").click()
    page.locator("#curate-status").filter(has_text="Restored 1 image").wait_for()
    assert copy.read_bytes() == before
