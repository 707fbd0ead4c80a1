"""Curate › Web search in a real browser: search (fake backend, local URLs), see the thumbnails, download into a
new class, and find the images in the class gallery."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect
from servers import free_port
from test_collect import FakeSearch, OfflineSearch, ddgs_offline_error, site  # noqa: F401 - `site` is the local image server fixture

from conftest import browser_page, made_photos
from otter.app import ui_collect
from otter.data import manifest, scrape
from otter.data.dataset import list_classes

pytestmark = pytest.mark.browser


@pytest.fixture
def app_url(tmp_path):
    from otter.app.ui import build_app

    demo = build_app(tmp_path / "data", tmp_path / "models")
    demo.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url, tmp_path / "data"
    demo.close()


def test_search_then_download_fills_the_class_gallery(app_url, site, monkeypatch):  # noqa: F811
    url, data = app_url
    photos = made_photos("sea", 12)[9:]
    urls = [site.add(f"/ui/{i}.jpg", p.read_bytes()) for i, p in enumerate(photos)] + [site.base + "/ui/gone.jpg"]
    fake = FakeSearch(urls)
    monkeypatch.setattr(scrape, "DEFAULT_BACKEND", fake)
    monkeypatch.setattr(ui_collect, "ALLOW_PRIVATE_URLS", True)  # the image server is on 127.0.0.1

    def slow_classes(root):  # the class list refreshed on focus arrives after the user has typed
        time.sleep(1.0)
        return list_classes(root)

    monkeypatch.setattr(ui_collect, "list_classes", slow_classes)

    wait = {"timeout": 30_000}  # the test machine may be busy: generous waits, never a speed check
    with browser_page(url) as page:
        page.get_by_role("tab", name="Curate").click()
        page.get_by_role("tab", name="Web search").click()
        page.locator("#search-query textarea").fill("sea otter")
        page.locator("#search-button").click()
        expect(page.locator("#search-message")).to_contain_text("Found 4 images", **wait)
        expect(page.locator("#search-gallery img")).to_have_count(4, **wait)

        box = page.locator("#search-class input")
        box.fill("sea")
        box.press("Enter")
        box.press("Tab")  # commit the typed class name before pressing Download
        page.wait_for_timeout(2000)  # let the slow class-list refresh land: it must not wipe the typed name
        expect(box).to_have_value("sea", **wait)
        page.locator("#search-download").click()
        expect(page.locator("#search-summary")).to_contain_text("kept 3, failed 1 (http 404: 1), duplicates 0", timeout=60_000)
        # The Images view now shows the new class with its three downloaded images.
        page.get_by_role("tab", name="Images").click()
        expect(page.locator("#curate-gallery img")).to_have_count(3, **wait)
        expect(page.locator("#curate-status")).to_contain_text("kept 3", **wait)

    assert fake.calls[0]["query"] == "sea otter"
    assert len(list((data / "sea").glob("*.jpg"))) == 3
    assert sorted(manifest.read(data)["source_url"]) == sorted(urls[:3])


def test_search_without_internet_says_so_once_and_at_once(app_url, monkeypatch):
    """Offline, ddgs fails with a DNS error: the page says so in one plain line within seconds (it used to spin
    through 14 s of retries, then show "DNSError: DNSError('error sending request ...')")."""
    url, _ = app_url
    offline = OfflineSearch(ddgs_offline_error("DNSError"))
    monkeypatch.setattr(scrape, "DEFAULT_BACKEND", offline)
    monkeypatch.setattr(scrape, "BACKOFF_SECONDS", 5.0)  # a retry would be seen: the message would come too late
    line = "No internet connection: web search needs to reach DuckDuckGo."
    with browser_page(url) as page:
        page.get_by_role("tab", name="Curate").click()
        page.get_by_role("tab", name="Web search").click()
        page.locator("#search-query textarea").fill("sea otter")
        page.get_by_label("Also search variations (photo, close up, photography…)").check()
        page.locator("#search-button").click()
        expect(page.locator("#search-message")).to_have_text(f"⚠️ {line}", timeout=15_000)  # retries would take 35 s
        page.wait_for_timeout(1000)
        assert page.locator("body").inner_text().count(line) == 1  # no pop-up repeating it
        assert "DNSError" not in page.locator("body").inner_text()
    assert offline.calls == 1
