"""Curate › Suspects in a real browser: run an audit, relabel a suspect to its suggestion, click a confusion-matrix cell."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import browser_page, captions_cut, make_shapes, serving

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
]
TIMEOUT_MS = 300_000  # the audit trains real (tiny) models


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from otter.app import ui_audit

    base = tmp_path_factory.mktemp("audit-browser")
    data = make_shapes(base / "data", per_class=8)
    shutil.copyfile(data / "disc" / "disc001.png", data / "square" / "copy-disc001.png")  # always a suspect
    saved = ui_audit.FOLDS, ui_audit.CONFIG_OVERRIDES
    ui_audit.FOLDS, ui_audit.CONFIG_OVERRIDES = 2, {"sizes": (16,), "epochs": 1, "bs": 4}
    with serving(data, base / "models") as url:
        yield {"url": url, "data": data}
    ui_audit.FOLDS, ui_audit.CONFIG_OVERRIDES = saved


@pytest.fixture(scope="module")
def page(app):
    with browser_page(app["url"], height=1000) as page:
        yield page


def test_run_audit_relabel_a_suspect_and_open_a_matrix_cell(page, app):
    from otter.app import audit_view
    from otter.review import audit

    data = app["data"]
    page.get_by_role("tab", name="Curate").click()
    page.get_by_role("tab", name="Suspects").click()
    page.locator("#audit-status").filter(has_text="No audit yet").wait_for()
    expect(page.locator("#audit-cancel")).to_be_disabled()  # nothing to cancel yet
    page.locator("#audit-run").click()
    page.locator("#audit-status").filter(has_text="suspects").wait_for(timeout=TIMEOUT_MS)
    expect(page.locator("#audit-cancel")).to_be_disabled()  # the audit is over

    result = audit.load_audit(data)
    shown = [r for r in audit_view.suspects(result) if (data / r["image"]).is_file()]
    i, row = next((i, r) for i, r in enumerate(shown) if r["suggested"] != r["label"])
    thumbs = page.locator("#audit-gallery button.thumbnail-item")
    expect(thumbs).to_have_count(len(shown))
    assert captions_cut(page, "#audit-gallery") == []  # a few suspects were huge, cropped, captions out of view
    assert thumbs.first.bounding_box()["width"] < 250
    thumbs.nth(i).click()
    page.locator("#audit-picked").filter(has_text=row["image"]).wait_for()
    page.locator("#audit-relabel").click()
    page.locator("#audit-picked").filter(has_text="Relabelled").wait_for()
    name = row["image"].split("/", 1)[1]
    assert not (data / row["image"]).exists()
    assert any(p.name.startswith(Path(name).stem) for p in (data / row["suggested"]).iterdir())

    # Click the cell "given square, predicted disc": row 1, column 1 (column 0 holds the class names).
    result = audit.load_audit(data)
    cell = result.confusion()[1][0]
    page.locator('#audit-confusion [data-testid="cell-1-1"]').click()
    page.locator("#audit-title").filter(has_text="predicted disc").wait_for()
    assert page.locator("#audit-gallery button.thumbnail-item").count() == cell
