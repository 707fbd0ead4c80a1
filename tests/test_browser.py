"""The app in a real browser (Debian's chromium driven by Playwright): predict, curate, train, predict again.

Set OTTER_SCREENSHOTS_DIR=docs to refresh the README's screenshots."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import captions_cut, made_photos, running_app, weights_bytes
from otter.app.service import ModelService

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
]
TIMEOUT_MS = 240_000  # generous: CI machines are slow and training is real


@pytest.fixture(scope="module")
def app(tiny_trained, tmp_path_factory):
    with running_app(tiny_trained[0], tmp_path_factory.mktemp("browser"), per_class=8, size=64) as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, app):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(app["url"])
    yield page
    page.close()


def screenshot(page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("OTTER_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def predict_in_browser(page, photo: Path) -> str:
    page.get_by_role("tab", name="Predict").click()
    page.locator("#predict-image input[type=file]").set_input_files(str(photo))
    info = page.locator("#predict-info")
    info.filter(has_text="Model").wait_for(timeout=TIMEOUT_MS)
    return info.inner_text()


def test_drop_a_photo_and_see_a_label(page, tmp_path):
    info = predict_in_browser(page, made_photos("sea", 4)[3])
    assert "tiny" in info and "ms" in info
    label = page.locator("#predict-label").inner_text()
    assert "river" in label or "sea" in label
    screenshot(page, "predict", tmp_path)


def test_bad_file_shows_its_message_once_and_the_app_keeps_working(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.locator("#explain-toggle input").check()  # the explanation beside the answer must not repeat it either
    page.locator("#predict-image input[type=file]").set_input_files(str(bad))
    info = page.locator("#predict-info")
    info.filter(has_text="not an image").wait_for(timeout=TIMEOUT_MS)
    expect(page.locator("#predict-image img")).to_have_count(0)  # removed, not shown as a broken-image icon
    page.wait_for_timeout(1500)  # a pop-up, or a second event clearing the message, would have come by now
    expect(page.locator(".toast-body")).to_have_count(0)
    assert page.locator("body").inner_text().count("not an image Pillow can read") == 1
    expect(info).to_contain_text("notes.png: not an image")
    assert "tiny" in predict_in_browser(page, made_photos("river", 1)[0])
    page.locator("#predict-image button[aria-label='Remove Image']").first.click()  # clearing clears the answer
    expect(info).to_have_text("")
    expect(page.locator("#predict-label")).not_to_contain_text("river")
    expect(page.locator("#predict-label")).not_to_contain_text("sea")


def test_many_photos_give_a_table_thumbnails_and_a_csv(page, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\0" * 50)
    page.get_by_text("Many photos at once").click()
    expect(page.locator("#predict-files")).to_be_visible()
    expect(page.locator("#predict-table")).to_be_hidden()  # no empty table headed "1 2 3"
    expect(page.locator("#predict-photos")).to_be_hidden()
    photos = [*made_photos("river", 2), bad]
    page.locator("#predict-files input[type=file]").set_input_files([str(p) for p in photos])
    page.locator("#predict-note").filter(has_text="2 classified, 1 could not be read").wait_for(timeout=TIMEOUT_MS)
    table = page.locator("#predict-table").inner_text()
    assert all(p.name in table for p in photos)
    thumbs = page.locator("#predict-photos button.thumbnail-item img")
    expect(thumbs).to_have_count(2)  # the readable photos, each captioned with its file and label
    captions = page.locator("#predict-photos .caption-label").all_inner_texts()
    assert [c.split(" · ")[1] for c in captions] == [p.name for p in photos[:2]]
    assert all(c.split(" · ")[0] in ("river", "sea", "not sure") for c in captions)
    screenshot(page, "predict-many", tmp_path)
    with page.expect_download() as download:
        page.locator("#predict-csv a").first.click()
    csv = Path(download.value.path()).read_text()
    assert csv.splitlines()[0].startswith("file,label,probability") and len(csv.splitlines()) == 4


def test_delete_images_in_curate_and_restore_them(page, app, tmp_path):
    page.get_by_role("tab", name="Curate").click()
    thumbs = page.locator("#curate-gallery button.thumbnail-item")
    thumbs.first.wait_for()
    names = [thumbs.nth(i).locator("img").get_attribute("alt") for i in (0, 2)]
    paths = [app["data"] / "river" / n for n in names]
    before = [p.read_bytes() for p in paths]
    thumbs.nth(0).click()
    thumbs.nth(2).click()  # straight after the first: both clicks must count
    for n in names:
        expect(page.locator("#curate-selected")).to_contain_text(f"river/{n}")
    screenshot(page, "curate", tmp_path)
    page.locator("#curate-delete").click()
    page.locator("#curate-status").filter(has_text="Moved to the trash 2 images").wait_for()
    assert not any(p.exists() for p in paths)
    page.get_by_role("tab", name="Trash").click()
    thumb = page.locator("#trash-gallery button.thumbnail-item img").first
    thumb.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())  # served
    for n in names:
        page.locator("#trash-gallery button.thumbnail-item", has=page.locator(f"img[alt='river/{n}']")).click()
    expect(page.locator("#trash-selected")).to_contain_text("2 selected")
    page.locator("#trash-restore").click()
    page.locator("#curate-status").filter(has_text="Restored 2 images").wait_for()
    assert [p.read_bytes() for p in paths] == before


def test_review_lists_the_hardest_images_and_relabels_one(page, app):
    page.get_by_role("tab", name="Curate").click()
    page.get_by_role("tab", name="Review").click()
    page.locator("#review-split label", has_text="valid").click()
    first = page.locator("#review-gallery button.thumbnail-item").first
    first.wait_for()
    first.click()
    picked = page.locator("#review-selected")
    expect(picked).to_contain_text("1 selected")
    rel = picked.inner_text().split(": ", 1)[1].strip()
    old_class = rel.split("/")[0]
    new_class = "sea" if old_class == "river" else "river"
    target = page.locator("#review-target input")
    target.fill(new_class)
    target.press("Enter")
    page.locator("#review-relabel").click()
    status = page.locator("#curate-status").filter(has_text=f"Moved 1 image: {rel} → {new_class}/")
    status.wait_for()
    dest = status.inner_text().split(" → ")[1].rstrip(".")  # under a free name if `name` is taken there
    moved = app["data"] / dest
    assert moved.is_file() and not (app["data"] / rel).exists()
    moved.rename(app["data"] / rel)  # put it back for the other tests


def test_review_confusion_matrix_cell_shows_exactly_its_images(page, app):
    import json

    meta = json.loads((app["models"] / "tiny" / "model.json").read_text())
    classes, confusion = meta["classes"], meta["confusion"]
    row, col = max(((r, c) for r in range(len(classes)) for c in range(len(classes))), key=lambda rc: confusion[rc[0]][rc[1]])
    page.get_by_role("tab", name="Curate").click()
    page.get_by_role("tab", name="Review").click()
    cell = page.locator(f'#review-confusion [data-testid="cell-{row}-{col + 1}"]')
    expect(cell).to_have_text(str(confusion[row][col]))
    cell.click()
    captions = page.locator("#review-gallery .caption-label")
    expect(captions).to_have_count(confusion[row][col])
    for text in captions.all_inner_texts():
        assert f": {classes[row]} → {classes[col]} (loss" in text
    assert captions_cut(page, "#review-gallery") == []  # it showed "00000034.jpg: se…"
    expect(page.locator("#review-split input[value=valid]")).to_be_checked()


def start_training(page, epochs: int, name: str) -> None:
    """Train tab: from scratch, 32 px, batch 8, `epochs` epochs into model `name`, then Start."""
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-pretrained input[type=checkbox]").uncheck()
    page.locator("#train-sizes textarea, #train-sizes input").first.fill("32")
    page.locator("#train-epochs textarea, #train-epochs input").first.fill(str(epochs))
    page.locator("#train-bs textarea, #train-bs input").first.fill("8")
    page.locator("#train-model-name textarea, #train-model-name input").first.fill(name)
    page.locator("#train-start").click()


def test_the_train_form_starts_with_its_blank_defaults(page, app):
    """Blank fields are the recipe's: a user who only presses Start gets a training, not "batch size must be
    at least 1" (a blank gr.Number arrived as 0). Cancelled at once: the point is the form."""
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-start").click()
    message = page.locator("#train-message")
    message.filter(has_text="Started training").or_(message.filter(has_text="⚠️")).first.wait_for()
    expect(message).to_contain_text("Started training")
    expect(message).to_contain_text("efficientnet_lite0, sizes 224, pretrained on")
    page.locator("#train-cancel").click()
    wait_for_end(page.locator("#train-status"))


def wait_for_end(status) -> str:
    """The Train status once it shows the end of the job, whichever end it was."""
    ends = [status.filter(has_text=t) for t in ("Done", "Training failed", "Cancelled")]
    ends[0].or_(ends[1]).or_(ends[2]).first.wait_for(timeout=TIMEOUT_MS)
    return status.inner_text()


def test_train_a_tiny_model_compare_it_and_use_it_for_predict(page, app, tmp_path):
    """A new model does not replace the default by itself: the tab compares the two, "Use for Predict" switches."""
    from otter.model.io import default_name

    page.get_by_role("tab", name="Train").click()
    name_box = page.locator("#train-model-name textarea, #train-model-name input").first
    expect(name_box).to_have_attribute("placeholder", re.compile(r"^blank: river-sea-\d{4}-\d\d-\d\d$"))
    start_training(page, epochs=1, name="browser")
    page.locator("#train-message").filter(has_text="Started training").wait_for()
    status = page.locator("#train-status")
    status.filter(has_text="Stage:").or_(status.filter(has_text="Done")).first.wait_for(timeout=TIMEOUT_MS)
    page.locator("#train-start").click()  # a second start while running is refused (or it has already finished)
    page.locator("#train-message").filter(has_text="already running").or_(
        page.locator("#train-message").filter(has_text="Started training")
    ).first.wait_for()
    assert "Done" in wait_for_end(status), status.inner_text()
    expect(page.locator("#train-message")).not_to_contain_text("already running")  # no stale message beside "Done"
    assert weights_bytes(app["models"] / "browser")
    page.locator("#train-epochs-table").filter(has_text="1").wait_for()
    compare = page.locator("#train-compare")
    expect(page.locator("#train-results")).to_contain_text("Results of model browser")
    page.locator("#train-zip").click()  # the model folder as a zip, to download
    expect(page.locator("#train-zip-file")).to_contain_text("browser")
    with page.expect_download() as download:
        page.locator("#train-zip-file a").first.click()
    names = zipfile.ZipFile(download.value.path()).namelist()
    assert "browser/model.json" in names and any(n.endswith(".safetensors") for n in names)
    expect(compare).to_contain_text("New model browser:")
    expect(compare).to_contain_text("current default tiny:")
    screenshot(page, "train", tmp_path)
    assert "tiny" in predict_in_browser(page, made_photos("sea", 2)[1])  # Predict still answers with the default

    page.get_by_role("tab", name="Train").click()
    page.locator("#train-use").click()
    expect(compare).to_contain_text("browser is now the default model")
    expect(page.locator("#train-use")).to_be_hidden()
    assert default_name(app["models"]) == "browser"
    page.get_by_role("tab", name="Predict").click()
    page.locator("#predict-image input[type=file]").set_input_files(str(made_photos("river", 2)[1]))
    expect(page.locator("#predict-info")).to_contain_text("Model browser", timeout=TIMEOUT_MS)


def test_running_job_survives_a_reload_and_cancel_keeps_the_model(page, app):
    before = weights_bytes(app["models"] / "tiny")
    start_training(page, epochs=500, name="tiny")
    page.locator("#train-message").filter(has_text="replaces the model of that name").wait_for()
    page.reload()  # as if the browser was closed and the page opened again
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-status").filter(has_text="Stage:").wait_for(timeout=TIMEOUT_MS)
    # The reloaded form shows the running job's settings, not the defaults; the results say whose they are.
    expect(page.locator("#train-sizes textarea, #train-sizes input").first).to_have_value("32")
    expect(page.locator("#train-epochs textarea, #train-epochs input").first).to_have_value("500")
    expect(page.locator("#train-model-name textarea, #train-model-name input").first).to_have_value("tiny")
    expect(page.locator("#train-pretrained input[type=checkbox]")).not_to_be_checked()
    expect(page.locator("#train-results")).to_contain_text("the model in training shows its own when it finishes")
    expect(page.locator("#train-progress progress")).to_be_visible()  # a real progress bar
    expect(page.locator("#train-cancel")).to_be_enabled()
    page.locator("#train-cancel").click()
    page.locator("#train-status").filter(has_text="Cancelled").wait_for(timeout=TIMEOUT_MS)
    expect(page.locator("#train-cancel")).to_be_disabled()  # nothing to cancel any more
    expect(page.locator("#train-progress progress")).to_have_count(0)
    assert weights_bytes(app["models"] / "tiny") == before


def test_photo_unlike_the_classes_shows_not_sure(page, app):
    """With the detector accepting everything the page shows a class; rejecting everything, "Not sure"."""
    import json

    from otter.model.io import default_model
    from otter.model.ood import METHODS

    model_dir = default_model(app["models"])  # the one Predict uses (an earlier test may have made another the default)
    meta_file = model_dir / "model.json"
    original = meta_file.read_text()
    meta = json.loads(original)
    assert meta["ood"]["method"] in METHODS, meta.get("ood")
    label = page.locator("#predict-label")
    try:
        for threshold, shows_not_sure in ((1e30, False), (-1e30, True)):
            meta["ood"]["threshold"] = threshold
            meta_file.write_text(json.dumps(meta))  # the app reloads a model whose files changed
            page.reload()
            assert model_dir.name in predict_in_browser(page, made_photos("sea", 1)[0])
            if shows_not_sure:
                expect(label).to_contain_text("Not sure")
                expect(page.locator("#predict-info")).to_contain_text("river")  # probabilities stay visible
                shown = label.inner_text() + page.locator("#predict-info").inner_text()
                assert shown.lower().count("not sure") == 1, shown  # said once
                page.get_by_text("Many photos at once").click()
                page.locator("#predict-files input[type=file]").set_input_files([str(p) for p in made_photos("sea", 2)])
                page.locator("#predict-note").filter(has_text="2 classified").wait_for(timeout=TIMEOUT_MS)
                for row in (0, 1):  # the label column says "not sure", not the likeliest class
                    expect(page.locator(f'#predict-table [data-testid="cell-{row}-1"]')).to_have_text("not sure")
                expect(page.locator("#predict-photos .caption-label").first).to_contain_text("not sure · ")
            else:
                expect(label).not_to_contain_text("Not sure")
                # The heading (the top class), not the label's list, which names every class whatever the answer.
                top = ModelService(app["models"]).predict(made_photos("sea", 1)[0]).label_data()["label"]
                expect(label.locator('[data-testid="label-output-value"]')).to_have_text(top)
    finally:
        meta_file.write_text(original)


def test_predictions_log_no_wiring_warning_in_the_console(browser, tiny_trained, tmp_path):
    """Without example photos (an empty data set) the first event was the explanation's (3 inputs), which the page
    took for the "/predict" API (1 input): every prediction logged "Too many arguments provided for the endpoint"."""
    with running_app(tiny_trained[0], tmp_path, per_class=0) as served:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.goto(served["url"])
        for photo in (made_photos("sea", 1)[0], made_photos("river", 1)[0]):
            assert "tiny" in predict_in_browser(page, photo)
            page.locator("#predict-image button[aria-label='Remove Image']").first.click()
        page.close()
    assert not [m for m in console if "Too many arguments" in m or m.startswith("error")], console


def test_upload_box_is_emptied_after_each_add_so_the_next_class_gets_only_its_photos(page, app):
    """A user adds river photos, picks sea and drops sea photos: nothing of the first drop may be filed again."""
    river, sea = made_photos("river", 12)[10:12], made_photos("sea", 12)[10:12]  # not in the app's small set
    before = {c: {p.name for p in (app["data"] / c).iterdir()} for c in ("river", "sea")}
    page.get_by_role("tab", name="Curate").click()
    page.get_by_text("Upload images into this class").click()
    box = page.locator("#curate-uploads")
    status = page.locator("#curate-status")
    try:
        expect(page.locator("#curate-class input")).to_have_value("river")
        box.locator("input[type=file]").set_input_files([str(p) for p in river])
        expect(box).to_contain_text(river[0].name)
        page.locator("#curate-upload").click()
        status.filter(has_text="Added 2 images to river").wait_for()
        for p in river:
            expect(box).not_to_contain_text(p.name)  # the box is empty again

        page.locator("#curate-class input").click()
        page.get_by_role("option", name="sea", exact=True).click()
        expect(page.locator("#curate-class input")).to_have_value("sea")
        box.locator("input[type=file]").set_input_files([str(p) for p in sea])
        page.locator("#curate-upload").click()
        status.filter(has_text="Added 2 images to sea").wait_for()
        expect(status).not_to_contain_text("skipped")
        added = {c: {p.name for p in (app["data"] / c).iterdir()} - before[c] for c in ("river", "sea")}
        assert added == {"river": {p.name for p in river}, "sea": {p.name for p in sea}}

        page.locator("#curate-class input").click()
        page.get_by_role("option", name="river", exact=True).click()
        box.locator("input[type=file]").set_input_files([str(river[0])])
        page.locator("#curate-upload").click()  # the same photo again: said, not copied
        status.filter(has_text="skipped 1 already in the data set: 1 in river").wait_for()
        assert {p.name for p in (app["data"] / "river").iterdir()} - before["river"] == {p.name for p in river}
    finally:
        for c in ("river", "sea"):  # leave the shared app's data set as the other tests expect it
            for p in (app["data"] / c).iterdir():
                if p.name not in before[c]:
                    p.unlink()
