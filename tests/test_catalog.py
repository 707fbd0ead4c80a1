"""The data set's catalog (otter.data.catalog): actions cost what they touch and stay consistent with the folders
through hand edits, a kill -9 mid-action and the command line and the app acting at once; the defects of the
former index.csv manifest (issue 26), each with the test that failed before its fix."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from otter.app import curate
from otter.data import catalog, dataset, fingerprint, folder_scan, intake, manifest
from otter.review import audit

ROOT = Path(__file__).resolve().parents[1]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_set(data: Path, per_class: int = 40, size: int = 24) -> Path:
    for c, cls in enumerate(("river", "sea")):
        (data / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (size, size), (c * 120, i * 3 % 256, (i * 7) % 256)).save(data / cls / f"{cls}{i:03d}.png")
    return data


def assert_consistent(data: Path) -> dict[str, str]:
    """The catalog lists exactly the image files on disk, each with its true hash, and the trash exactly the trash
    folder's items; returns {class/name: sha256} of the images."""
    catalog.forget_full_sync(data)
    on_disk = {f"{p.parent.name}/{p.name}": sha(p) for p in data.glob("*/*") if not p.parent.name.startswith(".") and p.is_file()}
    with catalog.connection(data) as con:
        listed = {r["path"]: r["sha256"] for r in catalog.rows(con)}
        trash = {i["id"]: i for i in catalog.trash_items(con)}
    assert listed == on_disk
    items = {p.name for p in (data / ".trash").iterdir()} if (data / ".trash").is_dir() else set()
    assert set(trash) == {i for i in items if any(f.name != "meta.json" for f in (data / ".trash" / i).iterdir())}
    for i, item in trash.items():
        assert sha(data / ".trash" / i / item["name"]) == item["sha256"]
    return listed


# ------------------------------------------------------------------------------------------- the defects


def test_a_reused_name_keeps_each_images_own_row(tmp_path):
    """Before: set_status matched rows by file name, so pasting a second `image.png` after trashing the first and
    moving it rewrote the trashed row too: the first image was no longer refused as trashed before."""
    data = make_set(tmp_path / "data", per_class=2)
    first, second = tmp_path / "a" / "image.png", tmp_path / "b" / "image.png"
    for path, colour in ((first, "red"), (second, "blue")):
        path.parent.mkdir()
        Image.new("RGB", (30, 30), colour).save(path)
    assert intake.add_images(data, "river", [first])["added"] == ["river/image.png"]
    dataset.move_to_trash(data, "river/image.png")
    assert intake.add_images(data, "river", [second])["added"] == ["river/image.png"]  # the name is free again
    dataset.relabel(data, "river/image.png", "sea")
    df = manifest.read(data)
    rows = df[df["file"].str.endswith("image.png")].set_index("status")
    assert rows.loc["trashed", "sha256"] == sha(first) and rows.loc["relabelled", "sha256"] == sha(second)
    again = intake.add_images(data, "river", [first])
    assert again["added"] == [] and "trash" in again["rejected"][0]["reason"]


def test_trashing_an_image_the_catalog_has_not_seen_records_its_hash(tmp_path):
    """Before: a file added by hand and trashed before any rescan got an empty hash in the manifest."""
    data = make_set(tmp_path / "data", per_class=2)
    dataset.class_counts(data)  # the catalog exists
    by_hand = data / "sea" / "by-hand.png"
    Image.new("RGB", (30, 30), "purple").save(by_hand)
    os.utime(data / "sea", ns=(1, 1))  # its folder's time says nothing changed: only the action can notice it
    catalog.sync(data)
    digest = sha(by_hand)
    copy = tmp_path / "copy.png"
    copy.write_bytes(by_hand.read_bytes())
    trash_id = dataset.move_to_trash(data, "sea/by-hand.png")
    df = manifest.read(data)
    assert df.loc[df["status"] == "trashed", "sha256"].tolist() == [digest]
    [item] = dataset.list_trash(data)
    assert item["id"] == trash_id and item["sha256"] == digest
    assert "trash" in intake.add_images(data, "river", [copy])["rejected"][0]["reason"]


def test_two_relabels_of_one_audit_both_land(tmp_path, monkeypatch):
    """Before: the audit's relabel loaded audit.csv, moved the file and saved, outside one lock: two tabs relabelling
    at once each saved their own copy, and one relabel vanished from the audit."""
    data = make_set(tmp_path / "data", per_class=2)
    rows = [
        {"image": f"river/river00{i}.png", "label": "river", "suggested": "sea", "score": 0.1, "flagged": True,
         "reason": "label", "kept": False, "same_as": [], "sha256": sha(data / "river" / f"river00{i}.png"), "probs": [0.1, 0.9]}
        for i in range(2)
    ]  # fmt: skip
    audit.save_audit(data, audit.AuditResult(rows, ["river", "sea"], {"fingerprint": audit.fingerprint(data)}))
    real = dataset.relabel

    def slow_relabel(*args, **kwargs):
        time.sleep(0.3)  # both threads are inside their action at once
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset, "relabel", slow_relabel)
    threads = [threading.Thread(target=audit.relabel, args=(data, f"river/river00{i}.png", "sea")) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    after = {r["image"]: r for r in audit.load_audit(data).rows}
    assert set(after) == {"sea/river000.png", "sea/river001.png"}
    assert not any(r["flagged"] for r in after.values())


def test_export_holds_the_data_lock(tmp_path, monkeypatch):
    """Before: export listed the images, then zipped them without the data lock, so an image moved meanwhile made
    the export fail (or its index name a file the zip does not hold)."""
    data = make_set(tmp_path / "data", per_class=5)
    real_write = zipfile.ZipFile.write
    mover = {}

    def write(self, filename, arcname=None, *args, **kwargs):
        if "thread" not in mover:  # at the first file, another tab moves the last image
            mover["thread"] = threading.Thread(
                target=lambda: mover.setdefault("dest", dataset.relabel(data, "sea/sea004.png", "river"))
            )
            mover["thread"].start()
            time.sleep(0.5)
        return real_write(self, filename, arcname, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "write", write)
    path, n = curate.export_zip(data, tmp_path / "out")
    mover["thread"].join()
    assert n == 10 and mover["dest"] == data / "river" / "sea004.png"  # the move waited for the export, then ran
    with zipfile.ZipFile(path) as zf:
        assert "images/sea/sea004.png" in zf.namelist()


# ----------------------------------------------------------------------------------------- consistency


def test_hand_edits_are_reconciled_reading_only_new_or_changed_files(tmp_path, monkeypatch):
    data = make_set(tmp_path / "data", per_class=10)
    intake.add_images(data, "river", [make_set(tmp_path / "src", per_class=1, size=30) / "sea" / "sea000.png"])
    assert_consistent(data)
    (data / "river" / "river000.png").unlink()  # deleted
    os.rename(data / "river" / "sea000.png", data / "sea" / "moved.png")  # moved to another class by hand
    Image.new("RGB", (30, 30), "yellow").save(data / "sea" / "new.png")  # copied in
    (data / "lake").mkdir()
    Image.new("RGB", (30, 30), "cyan").save(data / "lake" / "l.png")  # a new class
    with Image.open(data / "sea" / "sea001.png") as im:
        im.rotate(90).save(data / "sea" / "sea001.png")  # edited in place (its folder's time does not change)
    read = []
    real = fingerprint.fingerprint_file
    monkeypatch.setattr(fingerprint, "fingerprint_file", lambda p: read.append(Path(p).name) or real(p))
    catalog.forget_full_sync(data)
    counts = catalog.sync(data, full=True)
    assert sorted(read) == ["l.png", "new.png", "sea001.png"]  # the moved file keeps its hash: not read again
    assert counts == {"added": 2, "removed": 1, "changed": 1, "moved": 1}
    assert_consistent(data)
    assert dataset.list_classes(data) == ["lake", "river", "sea"]
    row = manifest.read(data).set_index("file").loc["sea/moved.png"]
    assert row["source_url"] == "upload"  # provenance follows a file moved by hand


def test_a_quick_sync_stats_folders_not_files(tmp_path, monkeypatch):
    data = make_set(tmp_path / "data", per_class=20)
    dataset.class_counts(data)
    time.sleep(folder_scan.RACY_NS / 1e9 + 0.05)
    catalog.sync(data)  # folder times now settled
    listed = []
    real = os.scandir
    monkeypatch.setattr(catalog.os, "scandir", lambda p: listed.append(str(p)) or real(p))
    assert dataset.class_counts(data) == {"river": 20, "sea": 20}
    assert listed == []  # nothing changed: no folder listed, no file statted
    Image.new("RGB", (30, 30), "yellow").save(data / "sea" / "new.png")
    assert dataset.class_counts(data) == {"river": 20, "sea": 21}
    assert not any(p.endswith("river") for p in listed)  # only the folder that changed is listed


KILLED_MOVE = textwrap.dedent(
    """
    import os, sys, time
    from otter.data import dataset
    real, n = os.rename, [0]
    def rename(a, b):
        real(a, b)
        n[0] += 1
        if n[0] == 25:
            print("halfway", flush=True)
            time.sleep(60)
    dataset.os.rename = rename
    data = sys.argv[1]
    if sys.argv[2] == "move":
        dataset.relabel_many(data, [f"river/river{i:03d}.png" for i in range(40)], "sea")
    else:
        dataset.trash_many(data, [f"sea/sea{i:03d}.png" for i in range(40)], reason="test")
    """
)


@pytest.mark.parametrize("action", ["move", "trash"])
def test_a_kill_mid_action_loses_nothing(tmp_path, action):
    data = make_set(tmp_path / "data")
    before = sorted(assert_consistent(data).values())
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MOVE, str(data), action], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "halfway"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # The transaction never committed; the 25 files it moved are found by the next sync (folder times changed).
    images = assert_consistent(data)
    trashed = [i["sha256"] for i in dataset.list_trash(data)]
    assert sorted([*images.values(), *trashed]) == before  # every image is somewhere, once
    assert len(trashed) == (25 if action == "trash" else 0)
    counts = dataset.class_counts(data)
    assert counts == ({"river": 15, "sea": 65} if action == "move" else {"river": 40, "sea": 15})
    if action == "trash":
        assert {i["class"] for i in dataset.list_trash(data)} == {"sea"}
        dataset.restore_many(data, [i["id"] for i in dataset.list_trash(data)])
        assert sorted(assert_consistent(data).values()) == before


def test_the_command_line_and_the_app_act_at_once(tmp_path):
    data = make_set(tmp_path / "data", per_class=60)
    before = sorted(assert_consistent(data).values())
    names = "\n".join(f"river/river{i:03d}.png" for i in range(30))
    cli = subprocess.Popen(
        [sys.executable, "-m", "otter", "data", "move", "-", "--to", "sea", "--data", str(data), "--json"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    cli.stdin.write(names)
    cli.stdin.close()
    said = [curate.delete(data, [f"sea/sea{i:03d}.png"]) for i in range(30)]  # the app, one click per image meanwhile
    said.append(curate.move(data, [f"river/river{i:03d}.png" for i in range(30, 40)], "lake"))
    assert cli.wait(timeout=120) == 0
    assert all(s.startswith(("Moved to the trash 1 image", "Moved 10 images")) for s in said)
    images = assert_consistent(data)
    assert dataset.class_counts(data) == {"lake": 10, "river": 20, "sea": 60}
    assert sorted([*images.values(), *(i["sha256"] for i in dataset.list_trash(data))]) == before
    with catalog.connection(data) as con:
        kinds = dict(con.execute("SELECT origin, count(*) FROM actions WHERE kind IN ('move', 'trash') GROUP BY origin"))
    assert kinds == {"cli": 1, "app": 31}  # the CLI's 30 moves are one transaction


# ------------------------------------------------------------------------------------------ the catalog


def test_an_existing_index_csv_is_imported_once(tmp_path):
    data = make_set(tmp_path / "data", per_class=2)
    gone = tmp_path / "gone.png"
    Image.new("RGB", (30, 30), "orange").save(gone)
    lines = [",".join(manifest.COLUMNS)]
    lines.append(
        f"river/river000.png,river,https://example.org/a.jpg,otters,{sha(data / 'river' / 'river000.png')},24,24,2025-01-01,kept"
    )
    lines.append(f"river/old.png,river,https://example.org/b.jpg,otters,{sha(gone)},30,30,2025-01-01,trashed")
    (data / "index.csv").write_text("\n".join(lines) + "\n")
    df = manifest.read(data).set_index("file")
    assert df.loc["river/river000.png", "source_url"] == "https://example.org/a.jpg"
    assert df.loc["sea/sea001.png", "source_url"] == "local"  # not listed there: found by the first sync
    assert "trash" in intake.add_images(data, "river", [gone])["rejected"][0]["reason"]  # trashed before, still
    (data / "index.csv").write_text(",".join(manifest.COLUMNS) + "\n")  # not read again
    assert manifest.read(data).set_index("file").loc["river/river000.png", "query"] == "otters"
    out = catalog.export_index(data, tmp_path / "export.csv")
    assert out.read_text().splitlines()[0] == ",".join(manifest.COLUMNS) and len(out.read_text().splitlines()) == 6


def test_pages_of_a_class_and_of_the_trash(tmp_path):
    data = make_set(tmp_path / "data", per_class=25)
    rels, page, pages, total = curate.class_page(data, "sea", 3, per_page=10)
    assert (page, pages, total) == (3, 3, 25) and rels == [f"sea/sea{i:03d}.png" for i in range(20, 25)]
    assert curate.class_page(data, "sea", 9, per_page=10)[1] == 3
    assert curate.class_page(data, "nope", 1) == ([], 1, 1, 0)
    curate.delete(data, [f"river/river{i:03d}.png" for i in range(12)])
    items, page, pages, total = curate.trash_page(data, 2, per_page=5)
    assert (page, pages, total, len(items)) == (2, 3, 12, 5)
    assert curate.counts_markdown(data) == "38 images · **river**: 13 · **sea**: 25 · trash: 12"


def test_header_sizes_match_pillow(tmp_path):
    from tests.conftest import made_photos

    for p in made_photos("sea", 6):
        with Image.open(p) as im:
            assert fingerprint.header_size(p.read_bytes()) == im.size
            im.convert("RGB").resize((33, 21)).save(tmp_path / "x.png")
            im.convert("RGB").resize((33, 21)).save(tmp_path / "x.jpg", progressive=True)
        for f in ("x.png", "x.jpg"):
            assert fingerprint.header_size((tmp_path / f).read_bytes()) == (33, 21)
    assert fingerprint.header_size(b"GIF89a....") is None and fingerprint.header_size(b"\xff\xd8\xff") is None
    assert fingerprint.fingerprint_file(p)[3:] == Image.open(p).size


def test_curating_during_training_neither_fails_it_nor_is_lost(tmp_path):
    """Before: training read the live folders, so a photo moved or trashed during a run failed it ("internal error")."""
    from otter.data.seen import image_hash
    from otter.model.train import TrainConfig, train
    from tests.conftest import make_small_set

    data = make_small_set(tmp_path / "data", per_class=8, size=40)
    moved, trashed = data / "river" / sorted(os.listdir(data / "river"))[0], data / "sea" / sorted(os.listdir(data / "sea"))[0]
    hashes = {image_hash(moved), image_hash(trashed)}
    done = []

    def on_event(e):
        if getattr(e, "type", None) == "batch" and not done:  # mid-run, as a user curating in another tab
            done.append(dataset.relabel(data, moved, "sea"))
            done.append(dataset.move_to_trash(data, trashed))

    cfg = TrainConfig(pretrained=False, arch="resnet18", sizes=(32,), epochs=2, bs=8, mixup=0.0)
    result = train(data, cfg, tmp_path / "models" / "m", on_event=on_event)
    assert len(done) == 2 and not moved.exists() and done[0].parent.name == "sea" and done[0].exists()  # it happened
    seen = set(result.meta["seen"]["train"]) | set(result.meta["seen"]["valid"])
    assert hashes <= seen and len(seen) == 16  # trained on the files as they were at start
    assert dataset.class_counts(data) == {"river": 7, "sea": 8} and len(dataset.list_trash(data)) == 1  # kept
    assert not (data / ".otter" / "snapshots").exists()


def test_look_alikes_are_searched_once_and_trashing_searches_nothing_again(monkeypatch):
    import numpy as np

    from otter.review import similar
    from otter.review.embeddings import Embeddings

    rng = np.random.default_rng(0)
    v = np.abs(rng.normal(size=(300, 32))).astype(np.float32)
    v[1::10] = v[0::10] + 0.01  # 30 planted copies
    names = [f"river/{i:03d}.png" for i in range(300)]
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(300)]

    def emb(keep):
        return Embeddings([names[i] for i in keep], [shas[i] for i in keep], v[keep], hashes={names[i]: shas[i] for i in keep})

    searches = []
    real = similar._compute_candidates
    monkeypatch.setattr(similar, "_compute_candidates", lambda *a: searches.append(1) or real(*a))
    everything = list(range(300))
    full = {(p["a"], p["b"]): p["score"] for p in similar.pairs(emb(everything)) if p["lookalike"]}
    assert len(full) >= 30 and len(searches) == 1
    gone = {0, 1, 150}
    rest = [i for i in everything if i not in gone]
    after = {(p["a"], p["b"]): p["score"] for p in similar.pairs(emb(rest)) if p["lookalike"]}
    assert len(searches) == 1  # trashing searched nothing again
    assert after == {k: s for k, s in full.items() if not {names[i] for i in gone} & set(k)}
    similar.pairs(emb(everything + []))  # restored: the first search again
    assert len(searches) == 1
    v2 = np.vstack([v, v[5:6] + 0.01])
    names.append("sea/new.png")
    shas.append("f" * 64)
    v = v2
    similar.pairs(emb([*everything, 300]))  # a new photo: a new search
    assert len(searches) == 2
