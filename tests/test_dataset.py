import os

import pytest
from PIL import Image

from otter.app import curate
from otter.data import catalog, dataset, intake, manifest
from otter.data.dataset import DatasetError
from otter.data.safepath import UnsafePath


def test_lists_classes_and_counts(small_data):
    assert dataset.list_classes(small_data) == ["river", "sea"]
    assert dataset.class_counts(small_data) == {"river": 8, "sea": 8}
    (small_data / ".trash").mkdir()
    assert dataset.list_classes(small_data) == ["river", "sea"], "hidden folders are not classes"


def test_delete_then_restore_keeps_bytes_and_class(small_data):
    img = dataset.list_images(small_data, "sea")[0]
    original = img.read_bytes()
    trash_id = dataset.move_to_trash(small_data, "sea/" + img.name)
    assert not img.exists()
    assert dataset.class_counts(small_data)["sea"] == 7
    [item] = dataset.list_trash(small_data)
    assert item["id"] == trash_id and item["class"] == "sea" and item["name"] == img.name
    restored = dataset.restore(small_data, trash_id)
    assert restored == img and restored.read_bytes() == original
    assert dataset.list_trash(small_data) == []
    with pytest.raises(DatasetError):
        dataset.restore(small_data, trash_id)


def test_relabel_moves_file_and_updates_manifest(small_data):
    img = dataset.list_images(small_data, "river")[0]
    new = dataset.relabel(small_data, img, "sea")
    assert new.parent.name == "sea" and new.exists() and not img.exists()
    df = manifest.read(small_data)  # the catalog (index.csv is an export now)
    row = df[df["file"] == f"sea/{new.name}"].iloc[0]
    assert row["status"] == "relabelled" and row["class"] == "sea"


def test_trash_and_restore_recorded_in_manifest(small_data):
    dataset.rescan(small_data)
    img = dataset.list_images(small_data, "river")[1]
    tid = dataset.move_to_trash(small_data, img)
    df = manifest.read(small_data)  # the catalog (index.csv is an export now)
    assert df.loc[df["file"] == f"river/{img.name}", "status"].item() == "trashed"
    dataset.restore(small_data, tid)
    df = manifest.read(small_data)  # the catalog (index.csv is an export now)
    assert df.loc[df["file"] == f"river/{img.name}", "status"].item() == "kept"
    assert len(df) == 16


@pytest.mark.parametrize("name", ["..", "../evil", "/etc", "a/b", "a\\b", "bad\x00name", ".hidden", "x" * 300, ""])
def test_class_names_that_escape_are_refused(small_data, name):
    with pytest.raises(UnsafePath):
        dataset.add_class(small_data, name)
    with pytest.raises(UnsafePath):
        dataset.relabel(small_data, dataset.list_images(small_data, "sea")[0], name)


@pytest.mark.parametrize("image", ["../outside.jpg", "sea/../../outside.jpg", "/etc/passwd", "sea/../river/x.jpg", "sea"])
def test_image_paths_that_escape_are_refused(small_data, image):
    outside = small_data.parent / "outside.jpg"
    outside.write_bytes(b"keep me")
    with pytest.raises((UnsafePath, DatasetError)):
        dataset.move_to_trash(small_data, image)
    assert outside.read_bytes() == b"keep me"


def test_symlink_pointing_outside_is_refused(small_data):
    secret = small_data.parent / "secret.jpg"
    Image.new("RGB", (20, 20)).save(secret)
    link = small_data / "sea" / "link.jpg"
    os.symlink(secret, link)
    assert link not in dataset.list_images(small_data, "sea")
    with pytest.raises(UnsafePath):
        dataset.move_to_trash(small_data, "sea/link.jpg")
    os.symlink(small_data.parent, small_data / "escape")
    assert "escape" not in dataset.list_classes(small_data)
    assert secret.exists()


def test_unicode_class_names_work(small_data):
    path = dataset.add_class(small_data, "loutre de mer 🦦")
    assert path.is_dir() and "loutre de mer 🦦" in dataset.list_classes(small_data)


def test_verify_trashes_bad_files_with_reason(small_data):
    sea = small_data / "sea"
    (sea / "empty.jpg").write_bytes(b"")
    (sea / "text.jpg").write_text("not an image")
    good = dataset.list_images(small_data, "sea")[0].read_bytes()
    (sea / "truncated.jpg").write_bytes(good[: len(good) // 2])
    Image.new("RGB", (4, 4)).save(sea / "tiny.png")
    report = dataset.verify_folder(small_data)
    reasons = {t["file"]: t["reason"] for t in report["trashed"]}
    assert set(reasons) == {"sea/empty.jpg", "sea/text.jpg", "sea/truncated.jpg", "sea/tiny.png"}
    assert "empty" in reasons["sea/empty.jpg"] and "too small" in reasons["sea/tiny.png"]
    assert report["ok"] == 16
    assert {t["name"] for t in dataset.list_trash(small_data)} == {"empty.jpg", "text.jpg", "truncated.jpg", "tiny.png"}


def test_upload_into_class_verifies(small_data, tmp_path):
    good = tmp_path / "photo.jpg"
    Image.new("RGB", (40, 40), "green").save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    report = intake.add_images(small_data, "river", [good, bad])
    assert report["added"] == ["river/photo.jpg"] and report["rejected"][0]["file"] == "bad.jpg"
    assert (small_data / "river" / "photo.jpg").read_bytes() == good.read_bytes()
    row = manifest.read(small_data).set_index("file").loc["river/photo.jpg"]
    assert row["source_url"] == "upload" and row["sha256"] == manifest.sha256_file(good)


def test_uploading_images_already_in_any_class_skips_them_and_says_where(tmp_path):
    data = tmp_path / "data"
    for cls, colours in (("river", ("red", "green", "blue")), ("sea", ("white",))):
        (data / cls).mkdir(parents=True)
        for colour in colours:
            Image.new("RGB", (40, 40), colour).save(data / cls / f"{colour}.png")
    again = []
    for p in dataset.list_images(data):
        again.append(tmp_path / f"again-{p.name}")
        again[-1].write_bytes(p.read_bytes())  # same bytes, other names: still the same photos
    new = tmp_path / "new.png"
    Image.new("RGB", (40, 40), "purple").save(new)
    msg = curate.upload(data, "sea", [*again, new, new])  # `new` twice in one drop: added once
    assert msg == "Added 1 image to **sea**; skipped 5 already in the data set: 3 in river, 2 in sea."
    assert dataset.class_counts(data) == {"river": 3, "sea": 2}
    assert curate.upload(data, "river", [new]) == "Added 0 images to **river**; skipped 1 already in the data set: 1 in sea."


def test_an_upload_of_a_trashed_image_is_refused_with_where_to_find_it(small_data, tmp_path):
    photo = dataset.list_images(small_data, "sea")[0]
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(photo.read_bytes())
    dataset.rescan(small_data)
    dataset.move_to_trash(small_data, dataset.rel(small_data, photo))
    report = intake.add_images(small_data, "sea", [copy])
    assert report["added"] == [] and "trash" in report["rejected"][0]["reason"]


def test_rescan_picks_up_files_added_by_hand(small_data):
    assert dataset.rescan(small_data) == 16
    Image.new("RGB", (30, 30)).save(small_data / "sea" / "new.png")
    assert dataset.rescan(small_data) == 1
    assert dataset.rescan(small_data) == 0
    assert catalog.exists(small_data)
