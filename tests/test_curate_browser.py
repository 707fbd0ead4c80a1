"""Curate in a real browser: paged galleries selected by clicking, emptying the trash, pasted URLs, the zip export,
keyboard review, and what a fresh start says."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest
from playwright.sync_api import expect
from servers import free_port
from test_collect import site  # noqa: F401 - the local image server fixture

from conftest import browser_page, made_photos, outlined, running_app, shape_image
from otter.app import ui_collect

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
]
MANY = 130  # images in the big class: three pages


@pytest.fixture(scope="module")
def app(tiny_trained, tmp_path_factory):
    with running_app(tiny_trained[0], tmp_path_factory.mktemp("curate"), per_class=8, size=64) as served:
        many = served["data"] / "many"
        many.mkdir()
        for i in range(MANY):
            shape_image("disc" if i % 2 else "square", 5000 + i, size=40).save(many / f"m{i:03d}.png")
        yield served


@pytest.fixture
def page(app):
    with browser_page(app["url"], height=900) as p:
        p.get_by_role("tab", name="Curate").click()
        yield p


def pick_class(page, name: str) -> None:
    page.locator("#curate-class input").click()
    page.get_by_role("option", name=name, exact=True).click()
    expect(page.locator("#curate-class input")).to_have_value(name)


def test_a_large_class_is_paged_selected_in_the_gallery_and_the_page_stays_short(page, app):
    pick_class(page, "many")
    thumbs = page.locator("#curate-gallery button.thumbnail-item")
    expect(page.locator("#curate-page")).to_contain_text(f"page 1 of 3 · {MANY} images")
    expect(thumbs).to_have_count(60)
    # More than two rows of thumbnails in view inside the gallery, and no checkbox per file: the page stays short.
    rows = page.evaluate(
        """() => {
          const box = document.querySelector('#curate-gallery .grid-wrap').getBoundingClientRect();
          const tops = [...document.querySelectorAll('#curate-gallery button.thumbnail-item')]
            .map(b => b.getBoundingClientRect()).filter(r => r.top >= box.top && r.bottom <= box.bottom + 1)
            .map(r => Math.round(r.top));
          return new Set(tops).size;
        }"""
    )
    assert rows >= 3, rows
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2200, height
    expect(page.locator("#curate-page input[type=checkbox], #curate-selected input[type=checkbox]")).to_have_count(0)

    first = thumbs.nth(0).locator("img").get_attribute("alt")
    thumbs.nth(0).click()
    thumbs.nth(1).click()
    thumbs.nth(3).click()
    expect(page.locator("#curate-selected")).to_contain_text("3 selected")
    page.wait_for_function("() => document.querySelector('#curate-marks').innerHTML.includes('Thumbnail 4 of')")
    assert outlined(page, "#curate-gallery") == [0, 1, 3]  # every selected image, not only the last click
    thumbs.nth(1).click()  # a second click unselects
    thumbs.nth(3).click()
    expect(page.locator("#curate-selected")).to_contain_text("1 selected")
    page.wait_for_function("() => !document.querySelector('#curate-marks').innerHTML.includes('Thumbnail 4 of')")
    assert outlined(page, "#curate-gallery") == [0]
    page.locator("#curate-next").click()
    expect(page.locator("#curate-page")).to_contain_text("page 2 of 3")
    second = thumbs.nth(5).locator("img").get_attribute("alt")
    assert second != first
    thumbs.nth(5).click()
    selected = page.locator("#curate-selected")
    expect(selected).to_contain_text("2 selected")
    expect(selected).to_contain_text(f"many/{first}")
    expect(selected).to_contain_text(f"many/{second}")
    page.locator("#curate-next").click()
    page.locator("#curate-next").click()  # past the last page: stays there
    expect(page.locator("#curate-page")).to_contain_text("page 3 of 3")
    expect(thumbs).to_have_count(MANY - 120)

    page.locator("#curate-delete").click()
    expect(page.locator("#curate-status")).to_contain_text("Moved to the trash 2 images")
    assert not (app["data"] / "many" / first).exists() and not (app["data"] / "many" / second).exists()
    expect(page.locator("#curate-page")).to_contain_text(f"page 3 of 3 · {MANY - 2} images")  # stays on its page
    expect(page.locator("#curate-selected")).to_contain_text("Nothing selected")
    expect(page.locator("#curate-marks style")).to_have_count(0)
    assert outlined(page, "#curate-gallery") == []

    # Restore one of them by clicking it in the trash.
    page.get_by_role("tab", name="Trash").click()
    trash = page.locator("#trash-gallery button.thumbnail-item")
    expect(trash).to_have_count(2)
    index = [trash.nth(i).locator("img").get_attribute("alt") for i in range(2)].index(f"many/{first}")
    trash.nth(index).click()
    expect(page.locator("#trash-selected")).to_contain_text(f"1 selected**: many/{first}".replace("**", ""))
    expect(page.locator("#trash-marks style")).to_have_count(1)
    assert outlined(page, "#trash-gallery") == [index]
    page.locator("#trash-restore").click()
    expect(page.locator("#curate-status")).to_contain_text("Restored 1 image")
    assert (app["data"] / "many" / first).is_file()
    expect(page.locator("#trash-selected")).to_contain_text("Nothing selected")
    expect(page.locator("#trash-marks style")).to_have_count(0)
    assert outlined(page, "#trash-gallery") == []  # no outline left beside "Nothing selected"


def test_emptying_the_trash_asks_first_and_deletes_only_the_trash(page, app):
    victims = sorted((app["data"] / "many").iterdir())[:2]
    from otter.app import curate

    curate.delete(app["data"], [f"many/{p.name}" for p in victims])
    n = len(curate.trash_items(app["data"]))
    page.reload()
    page.get_by_role("tab", name="Curate").click()
    page.get_by_role("tab", name="Trash").click()
    page.get_by_text("Empty the trash").click()
    confirm = page.locator("#trash-confirm")
    expect(confirm).to_contain_text(f"I understand this deletes {n} files for good")
    page.locator("#trash-empty").click()
    expect(page.locator("#curate-status")).to_contain_text("Nothing deleted")
    assert len(curate.trash_items(app["data"])) == n
    confirm.locator("input[type=checkbox]").check()
    page.locator("#trash-empty").click()
    expect(page.locator("#curate-status")).to_contain_text(f"Deleted {n} files from the trash for good")
    assert curate.trash_items(app["data"]) == []
    expect(page.locator("#trash-gallery button.thumbnail-item")).to_have_count(0)
    assert len(list((app["data"] / "river").iterdir())) == 8


def test_pasted_urls_are_added_to_the_class_with_a_line_per_failed_url(page, app, site, monkeypatch):  # noqa: F811
    monkeypatch.setattr(ui_collect, "ALLOW_PRIVATE_URLS", True)  # the image server is on 127.0.0.1
    photos = made_photos("sea", 12)[10:12]  # not in the app's small set
    good = [site.add(f"/pasted/{i}.jpg", p.read_bytes()) for i, p in enumerate(photos)]
    gone = site.base + "/pasted/gone.jpg"
    before = set((app["data"] / "sea").iterdir())
    pick_class(page, "sea")
    expect(page.locator("#curate-next")).to_be_hidden()  # one page: no Prev/Next
    page.get_by_text("Add images from URLs").click()
    page.locator("#curate-urls textarea").fill("\n".join([*good, gone]))
    page.locator("#curate-url-add").click()
    status = page.locator("#curate-status")
    expect(status).to_contain_text("Added 2 images to sea: kept 2, failed 1 (http 404: 1), duplicates 0", timeout=60_000)
    expect(status).to_contain_text(f"{gone}: http 404")
    expect(page.locator("#curate-page")).to_contain_text("10 images")
    added = set((app["data"] / "sea").iterdir()) - before
    assert len(added) == 2
    for p in added:
        p.unlink()


def test_export_downloads_a_zip_of_the_images_and_an_index(page, app):
    page.get_by_text("Export the data set").click()
    page.locator("#curate-export-button").click()
    expect(page.locator("#curate-status")).to_contain_text("Exported")
    with page.expect_download() as download:
        page.locator("#curate-export a").first.click()
    with zipfile.ZipFile(download.value.path()) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("index.csv").decode())))
        on_disk = {f"images/{p.parent.name}/{p.name}" for c in ("river", "sea", "many") for p in (app["data"] / c).iterdir()}
        assert {r["path"] for r in rows} == on_disk
        assert set(zf.namelist()) == on_disk | {"index.csv"}
    assert not list(app["data"].rglob("*.zip"))


def test_review_by_keyboard_relabels_trashes_and_moves(page, app):
    page.get_by_role("tab", name="Review").click()
    keys = page.locator("#review-keys")
    expect(keys).to_contain_text("1 river")
    expect(keys).to_contain_text("2 sea")
    expect(keys).to_contain_text("Delete")
    thumbs = page.locator("#review-gallery button.thumbnail-item")
    thumbs.first.wait_for()
    current = page.locator("#review-current")
    page.keyboard.press("ArrowRight")
    expect(current).to_contain_text("(1 of")
    page.keyboard.press("ArrowRight")
    expect(current).to_contain_text("(2 of")
    expect(thumbs.nth(1)).to_have_class(re.compile(r"\bselected\b"))  # outlined in the gallery
    page.keyboard.press("ArrowLeft")
    expect(current).to_contain_text("(1 of")
    rel = current.locator("strong").inner_text()
    old_class, name = rel.split("/")
    key, new_class = ("2", "sea") if old_class == "river" else ("1", "river")
    page.keyboard.press(key)
    status = page.locator("#curate-status")
    expect(status).to_contain_text(f"Moved 1 image: {rel} → {new_class}/")
    dest = app["data"] / status.inner_text().split(" → ")[1].rstrip(".")
    assert dest.is_file() and not (app["data"] / rel).exists()
    expect(current).not_to_contain_text(rel)  # the next image is the current one now
    nxt = current.locator("strong").inner_text()
    page.keyboard.press("Delete")
    expect(status).to_contain_text(f"Moved to the trash 1 image: {nxt}")
    assert not (app["data"] / nxt).exists()
    dest.rename(app["data"] / rel)  # put the relabelled one back for the other tests
    files = sorted(p.name for p in app["data"].rglob("*") if p.is_file())
    page.locator("#review-target input").click()  # typing in a box is typing, not review keys
    page.keyboard.press("1")
    page.keyboard.press("Delete")
    page.get_by_role("tab", name="Images").click()  # and on another tab the keys are not the review's
    page.locator("#curate-gallery").click(position={"x": 5, "y": 5})
    page.keyboard.press("Delete")
    page.keyboard.press("2")
    page.wait_for_timeout(1500)
    assert sorted(p.name for p in app["data"].rglob("*") if p.is_file()) == files
    expect(status).to_contain_text(f"Moved to the trash 1 image: {nxt}")


def test_a_fresh_start_says_how_to_begin(tmp_path):
    from otter.app.ui import build_app, launch

    demo = build_app(tmp_path / "data", tmp_path / "models")
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with browser_page(f"http://127.0.0.1:{port}/") as p:
            p.get_by_role("tab", name="Curate").click()
            counts = p.locator("#curate-counts")
            expect(counts).to_contain_text("No classes yet")
            for step in ("add a class", "upload", "Web search"):
                expect(counts).to_contain_text(step)
    finally:
        demo.close()
