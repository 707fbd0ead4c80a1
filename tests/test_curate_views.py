"""Curation actions as the app calls them: each says what changed, nothing is lost, bad requests are refused."""

from __future__ import annotations

import shutil

from conftest import made_photos
from otter.app import curate
from otter.data import dataset


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
    photo = made_photos("sea", 9)[8]  # not in the small set
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


def test_pages_split_a_large_class_and_clamp_the_page_number():
    items = [f"sea/{i:03d}.jpg" for i in range(130)]
    first, page, pages = curate.page_of(items, 1)
    assert (len(first), page, pages) == (curate.PAGE_SIZE, 1, 3) and first[0] == "sea/000.jpg"
    last, page, pages = curate.page_of(items, 99)
    assert (page, pages) == (3, 3) and last == items[120:]
    assert curate.page_of([], 4) == ([], 1, 1)
    assert curate.page_line(2, 3, 130) == "page 2 of 3 · 130 images"
    assert curate.page_line(1, 1, 1) == "1 image"


def test_selection_toggles_and_is_listed_compactly():
    sel = curate.toggle([], "sea/a.jpg")
    sel = curate.toggle(sel, "sea/b.jpg")
    assert curate.toggle(sel, "sea/a.jpg") == ["sea/b.jpg"]
    assert curate.selection_line(sel) == "**2 selected**: sea/a.jpg, sea/b.jpg"
    many = [f"sea/{i}.jpg" for i in range(30)]
    line = curate.selection_line(many)
    assert line.startswith("**30 selected**") and line.endswith(f"and {30 - curate.SELECTION_SHOWN} more")
    assert curate.selection_line([]).startswith("Nothing selected")


def test_empty_trash_needs_confirmation_and_deletes_only_the_trash(small_data, tmp_path):
    rels = curate.class_images(small_data, "sea")[:3]
    curate.delete(small_data, rels)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.jpg").write_bytes(b"precious")
    (small_data / ".trash" / "link").symlink_to(outside, target_is_directory=True)  # a link in the trash: never followed
    kept = {p: p.read_bytes() for p in dataset.list_images(small_data)}
    assert curate.empty_trash_prompt(len(curate.trash_items(small_data))) == "I understand this deletes 3 files for good"
    assert curate.empty_trash(small_data, confirmed=False).startswith("Nothing deleted")
    assert curate.empty_trash(small_data, confirmed=True, expected=2).startswith("Nothing deleted: the trash changed")
    assert len(curate.trash_items(small_data)) == 3
    assert curate.empty_trash(small_data, confirmed=True, expected=3) == "Deleted 3 files from the trash for good."
    assert curate.trash_items(small_data) == [] and not any((small_data / ".trash").iterdir())
    assert (outside / "keep.jpg").read_bytes() == b"precious"
    assert {p: p.read_bytes() for p in dataset.list_images(small_data)} == kept  # the classes are untouched
    assert curate.empty_trash(small_data, confirmed=True) == "The trash is already empty."
    assert curate.empty_trash_prompt(0) == "The trash is empty"


def test_a_trash_that_is_a_symlink_is_not_emptied(small_data, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "x").mkdir(parents=True)
    (elsewhere / "x" / "meta.json").write_text('{"id": "x", "class": "sea", "name": "a.jpg"}')
    (elsewhere / "x" / "a.jpg").write_bytes(b"not mine")
    (small_data / ".trash").symlink_to(elsewhere, target_is_directory=True)
    assert curate.empty_trash(small_data, confirmed=True).startswith("Could not empty the trash")
    assert (elsewhere / "x" / "a.jpg").read_bytes() == b"not mine"


def test_export_zip_holds_every_image_and_an_index_outside_the_data_folder(small_data, tmp_path):
    import csv
    import io
    import zipfile

    path, message = curate.export_view(small_data, tmp_path / "out")
    assert message.startswith("Exported 16 images in 2 classes")
    assert not str(path).startswith(str(small_data)) and path.endswith(".zip")
    with zipfile.ZipFile(path) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("index.csv").decode())))
        assert len(rows) == 16 and {r["label"] for r in rows} == {"river", "sea"}
        for r in rows:
            assert r["path"] == f"images/{r['label']}/{r['path'].rsplit('/', 1)[1]}"
            assert zf.read(r["path"]) == (small_data / r["label"] / r["path"].rsplit("/", 1)[1]).read_bytes()
    default, _ = curate.export_view(small_data)  # a fresh temporary folder
    assert default and not default.startswith(str(small_data))
    assert curate.export_view(small_data, small_data / "sea")[0] is None  # never inside the data folder
    assert not list((small_data / "sea").glob("*.zip"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images yet" in curate.export_view(empty, tmp_path / "out2")[1]


def test_fresh_start_says_how_to_begin(tmp_path):
    line = curate.counts_markdown(tmp_path)
    assert "add a class" in line and "upload" in line and "Web search" in line


def test_review_keys_number_the_classes_and_map_each_key():
    classes = ["river", "sea"]
    legend = curate.review_keys_legend(classes)
    assert "<kbd>1</kbd> river" in legend and "<kbd>2</kbd> sea" in legend and "Delete" in legend
    assert curate.review_key("2", classes) == ("relabel", "sea")
    assert curate.review_key("3", classes) is None  # no third class
    assert curate.review_key("0", classes) is None
    assert curate.review_key("Delete", classes) == ("trash", None) == curate.review_key("Backspace", classes)
    assert curate.review_key("ArrowLeft", classes) == ("move", "-1")
    assert curate.review_key("ArrowRight", []) == ("move", "+1")
    assert curate.review_key("x", classes) is None and curate.review_key(None, classes) is None
    assert "pick a model first" in curate.review_keys_legend([])


def test_selection_marks_outline_every_selected_image_of_each_gallery():
    css = curate.selection_marks({"grid": ["a", "b", "c"], "similar": ["c", "x"]}, ["c", "a"])
    rules = css.removeprefix("<style>").split(" {")[0].split(", ")
    assert rules == [
        '#grid button[aria-label^="Thumbnail 1 of "]',
        '#grid button[aria-label^="Thumbnail 3 of "]',
        '#similar button[aria-label^="Thumbnail 1 of "]',
    ]
    assert curate.selection_marks({"grid": ["a"]}, []) == ""  # nothing selected: no outline anywhere
    assert curate.selection_marks({"grid": ["a"]}, ["gone"]) == ""
