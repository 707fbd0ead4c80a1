"""Curation actions as the app calls them: each says what changed, nothing is lost, bad requests are refused."""

from __future__ import annotations

import shutil

from conftest import real_photos
from otter import curate, dataset


def test_delete_many_then_restore_keeps_bytes(small_data):
    rels = curate.class_images(small_data, "sea")[:2]
    before = {r: (small_data / r).read_bytes() for r in rels}
    msg = curate.delete(small_data, rels)
    assert msg.startswith("Moved to the trash 2 images") and rels[0] in msg
    assert not any((small_data / r).exists() for r in rels)
    items = curate.trash_items(small_data)
    assert {f"{i['class']}/{i['name']}" for i in items} == set(rels)
    assert "trash: 2" in curate.counts_markdown(small_data)
    msg = curate.restore(small_data, [i["id"] for i in items])
    assert msg.startswith("Restored 2 images")
    assert {r: (small_data / r).read_bytes() for r in rels} == before
    assert curate.trash_items(small_data) == []


def test_nothing_selected_and_bad_names_are_explained(small_data):
    assert "Nothing selected" in curate.delete(small_data, [])
    assert "Nothing selected" in curate.restore(small_data, [])
    msg = curate.delete(small_data, ["../../etc/passwd", "sea/missing.jpg"])
    assert msg.startswith("Moved to the trash 0 images") and "Could not change 2" in msg
    assert curate.add_class(small_data, "../evil").startswith("Cannot add class")
    assert not (small_data.parent / "evil").exists()
    assert "Choose the class" in curate.move(small_data, ["sea/x.jpg"], None)


def test_move_and_add_class_and_upload(small_data, tmp_path):
    r = curate.class_images(small_data, "river")[0]
    assert curate.add_class(small_data, "unsure") == "Added class **unsure**."
    assert curate.add_class(small_data, "unsure") == "Class **unsure** already exists."
    msg = curate.move(small_data, [r], "unsure")
    assert "→ unsure/" in msg and (small_data / "unsure" / r.split("/")[1]).is_file()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    photo = real_photos("sea", 9)[8]  # not in the small set
    msg = curate.upload(small_data, "unsure", [photo, bad])
    assert msg.startswith("Added 1 image to **unsure**") and "refused 1" in msg and "empty" in msg
    assert len(curate.class_images(small_data, "unsure")) == 2
    assert curate.gallery(small_data, [r])[0][1] == r.split("/")[1]


def test_review_table_filters_by_class_and_split(tiny_trained, tmp_path):
    model_dir, result = tiny_trained
    data = tmp_path / "data"
    shutil.copytree(result.meta["dataset"]["path"], data)
    meta = result.meta
    full = curate.review_table(data, meta)
    assert len(full) == len(meta["review"]) and full["loss"].is_monotonic_decreasing
    valid = curate.review_table(data, meta, split="valid")
    assert len(valid) == meta["dataset"]["n_valid"] and set(valid["split"]) == {"valid"}
    sea = curate.review_table(data, meta, cls="sea", split="all")
    assert set(sea["label"]) == {"sea"} and len(sea) == meta["dataset"]["counts"]["sea"]
    gone = full["image"][0]
    dataset.move_to_trash(data, gone)
    assert gone not in set(curate.review_table(data, meta)["image"])  # deleted images leave the review
    assert curate.review_table(data, None).empty


def test_review_confusion_cells_list_exactly_their_validation_images(tiny_trained, tmp_path):
    model_dir, result = tiny_trained
    data = tmp_path / "data"
    shutil.copytree(result.meta["dataset"]["path"], data)
    meta = result.meta
    classes, confusion = meta["classes"], meta["confusion"]
    table = curate.review_confusion(meta)
    assert list(table.columns) == [curate.REVIEW_CORNER, *classes] and list(table[curate.REVIEW_CORNER]) == classes
    for r, true in enumerate(classes):
        for c, pred in enumerate(classes):
            assert int(table.iloc[r, c + 1]) == confusion[r][c]
            assert curate.review_cell(meta, [r, c + 1]) == (true, pred)
            cell = curate.review_table(data, meta, cls=true, split="valid", predicted=pred)
            assert len(cell) == confusion[r][c]  # every validation image is in the review
            assert set(cell["label"]) <= {true} and set(cell["predicted"]) <= {pred}
    assert curate.review_cell(meta, [0, 0]) is None  # the row-name column is not a cell
    assert curate.review_cell(meta, [len(classes), 1]) is None
    no_valid = meta | {"confusion": None}
    assert curate.review_confusion(no_valid).empty and curate.review_cell(no_valid, [0, 1]) is None


def test_duplicates_found_and_extras_trashed(small_data):
    src = dataset.list_images(small_data, "sea")[0]
    shutil.copyfile(src, small_data / "river" / "copy.jpg")
    table = curate.duplicates_table(small_data)
    exact = table[table["kind"] == "exact"]
    assert len(exact) == 1 and exact.iloc[0]["n"] == 2
    assert sorted(curate.duplicate_images(exact)) == sorted(["river/copy.jpg", dataset.rel(small_data, src)])
    msg = curate.trash_duplicates(small_data, table)  # exact copies only: look-alikes are checked pair by pair
    assert msg.startswith("Moved 1 exact copy to the trash")
    assert curate.duplicates_table(small_data).query("kind == 'exact'").empty
    assert curate.trash_items(small_data)[0]["reason"].startswith("exact duplicate of")
    assert "Find look-alikes first" in curate.trash_duplicates(small_data, table.iloc[0:0])
    near = table[table["kind"] == "near"]
    assert all((small_data / image).is_file() for image in curate.duplicate_images(near))
