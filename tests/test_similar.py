"""Look-alikes from embeddings: edited copies group with their originals and different photos do not; the
blockwise search matches the full similarity matrix in bounded memory; "not a duplicate" is remembered; verify's
JSON keeps its shape; Curate › Duplicates' pairs and actions."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from otter import cli
from otter.app import curate
from otter.data import dataset
from otter.review import perceptual, similar

EDITS = {
    "crop": lambda im: im.crop((16, 16, 144, 144)),
    "mirror": ImageOps.mirror,
    "grey": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "box": lambda im: _box(im),
    "rotate": lambda im: im.rotate(10, resample=Image.BICUBIC),
    "brighter": lambda im: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.3)).enhance(1.3),
}  # blur and heavy JPEG: see test_blurred_and_shrunk_copies_group_by_their_perceptual_hash


def _box(im: Image.Image) -> Image.Image:
    im = im.copy()
    ImageDraw.Draw(im).rectangle([90, 95, 150, 150], fill=(240, 240, 240))
    return im


def make_copies_set(otters: Path, dest: Path) -> tuple[Path, dict[str, str]]:
    """60 different photos (every 4th sample photo, 30 per class, 160 px) and an edited copy of 6 of them, filed in
    the same class: {copy: original}."""
    for cls in ("river", "sea"):
        (dest / cls).mkdir(parents=True)
        for p in sorted((otters / cls).glob("*.jpg"))[::4][:30]:
            with Image.open(p) as im:
                im.convert("RGB").resize((160, 160)).save(dest / cls / p.name, quality=90)
    images = dataset.list_images(dest)
    copies = {}
    for k, (name, edit) in enumerate(EDITS.items()):
        src = images[k * 9 + 2]
        with Image.open(src) as im:
            edit(im.convert("RGB")).save(src.parent / f"{name}.jpg", quality=80)
        copies[f"{src.parent.name}/{name}.jpg"] = dataset.rel(dest, src)
    return dest, copies


@pytest.fixture(scope="module")
def copies_set(otters_dir, tmp_path_factory):
    """Real photos: different photos of one subject must not group, which made-up pictures cannot show."""
    data, copies = make_copies_set(otters_dir, tmp_path_factory.mktemp("lookalikes") / "data")
    similar.find_duplicates(data)  # computes and caches the embeddings once for the module
    return data, copies


@pytest.fixture
def copies_copy(copies_set, tmp_path):
    data, copies = copies_set
    shutil.copytree(data, tmp_path / "data")
    return tmp_path / "data", copies


def test_edited_copies_group_with_their_originals_and_different_photos_do_not(copies_set):
    data, copies = copies_set
    groups = similar.find_duplicates(data)
    assert groups["exact"] == []
    assert sorted(groups["near"]) == sorted(sorted([c, o]) for c, o in copies.items())


def test_exact_copies_are_grouped_apart_and_not_as_lookalikes(copies_copy):
    data, copies = copies_copy
    original = next(iter(copies.values()))
    other_class = "sea" if original.startswith("river") else "river"
    shutil.copyfile(data / original, data / other_class / "same-bytes.jpg")
    groups = similar.find_duplicates(data)
    assert sorted([original, f"{other_class}/same-bytes.jpg"]) in groups["exact"]
    assert all(f"{other_class}/same-bytes.jpg" not in g for g in groups["near"])  # one image per content
    assert sum(original in g for g in groups["near"]) == 1


def test_blurred_and_shrunk_copies_group_by_their_perceptual_hash(copies_copy):
    """The copies whose embeddings move most (bench/RESULTS.md) are grouped all the same, and nothing else is."""
    data, copies = copies_copy
    originals = [o for o in dataset.list_images(data) if dataset.rel(data, o) not in {*copies, *copies.values()}][:2]
    with Image.open(originals[0]) as im:
        im.convert("RGB").filter(ImageFilter.GaussianBlur(3)).save(originals[0].parent / "blurred.jpg", quality=90)
    with Image.open(originals[1]) as im:
        im.convert("RGB").resize((im.width // 4, im.height // 4), Image.BILINEAR).save(
            originals[1].parent / "small.jpg", quality=30
        )
    planted = {
        f"{originals[0].parent.name}/blurred.jpg": dataset.rel(data, originals[0]),
        f"{originals[1].parent.name}/small.jpg": dataset.rel(data, originals[1]),
    }
    groups = similar.find_duplicates(data)
    assert sorted(groups["near"]) == sorted(sorted(pair) for pair in [*copies.items(), *planted.items()])
    found = {(p["a"], p["b"]): p for p in similar.pairs(similar.embed_folder(data, compute_missing=False), data)}
    for copy, original in planted.items():
        pair = found.get((copy, original)) or found[(original, copy)]
        assert pair["lookalike"] and pair["hash_bits"] <= similar.MAX_HASH_BITS
    assert json.loads(perceptual.cache_path(data).read_text())["spec"] == perceptual.spec()
    perceptual.cache_path(data).unlink()  # embeddings cached before the hashes were: the view says so
    assert f"{len(copies) + 62} images not searched yet" in curate.lookalike_views(data)[2]
    similar.find_duplicates(data)
    assert curate.lookalike_views(data)[2] == ""


def test_close_hashes_are_found_blockwise_as_in_all_pairs():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**63, size=700, dtype=np.uint64)
    codes[500] = codes[3] ^ np.uint64(0b1011)  # 3 bits apart
    codes[650] = codes[3]
    found = similar.hash_pairs(codes, max_bits=4, block=64)
    bits = np.array([[bin(int(a) ^ int(b)).count("1") for b in codes] for a in codes])
    want = sorted((int(i), int(j), int(bits[i, j])) for i, j in zip(*np.nonzero(np.triu(bits <= 4, k=1))))
    assert sorted(found) == want and (3, 650, 0) in found and (3, 500, 3) in found and (500, 650, 3) in found
    assert found[0][2] == 0  # fewest bits first
    assert similar.hash_pairs(codes, max_bits=-1) == []


def test_a_damaged_hash_cache_is_rebuilt(copies_copy):
    data, _ = copies_copy
    path = perceptual.cache_path(data)
    good = json.loads(path.read_text())
    path.write_text("{not json")
    rebuilt = similar.embed_folder(data)
    assert json.loads(path.read_text()) == good and len(rebuilt.phash) == len(rebuilt.images)
    first = next(iter(good["phash"]))
    good["phash"][first] = "0" * 16  # a hash that is not the image's is only trusted if the spec matches...
    good["spec"] = {**good["spec"], "hash_size": 16}  # ...and a cache of another spec is not
    path.write_text(json.dumps(good))
    assert similar.embed_folder(data).phash[first] != 0


def test_more_like_this_lists_an_images_edited_copy_first(copies_set):
    data, copies = copies_set
    emb = similar.embed_folder(data, compute_missing=False)
    for copy, original in copies.items():
        found = similar.neighbours(emb, original, k=5)
        assert [n["image"] for n in found][0] == copy, (original, found)
        assert len(found) == 5 and original not in [n["image"] for n in found]
        assert [n["similarity"] for n in found] == sorted((n["similarity"] for n in found), reverse=True)
        assert all(n["class"] == n["image"].split("/")[0] for n in found)
    assert similar.neighbours(emb, "river/not-there.jpg") == []


def test_more_like_this_view_says_what_is_not_computed_yet(copies_copy):
    data, copies = copies_copy
    copy, original = next(iter(copies.items()))
    view = curate.more_like_this(data, original)
    assert view["missing"] == 0 and view["images"][0] == copy and len(view["items"]) == similar.MORE_LIKE_THIS
    path, caption = view["items"][0]
    assert Path(path) == data / copy and caption.startswith(f"{copy} · 0.")
    shutil.copyfile(data / original, data / "sea" / "new.jpg")
    (data / "sea" / "new.jpg").write_bytes((data / original).read_bytes() + b"\0")  # new bytes: no embedding yet
    assert "1 image not compared yet" in curate.more_like_this(data, original)["line"]
    fresh = curate.more_like_this(data, "sea/new.jpg")
    assert fresh["missing"] == 1 and fresh["items"] == [] and "not computed yet" in fresh["line"]
    similar.embed_folder(data)  # what the app's job does; then the new image is listed
    assert curate.more_like_this(data, "sea/new.jpg")["images"][0] == original
    assert "no longer in the data set" in curate.more_like_this(data, "sea/gone.jpg")["line"]


def test_blockwise_neighbours_match_the_full_matrix():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(300, 16)).astype(np.float32)
    v[150] = v[7] + 0.01  # a near copy
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    idx, sims = similar.nearest(unit, m=5, block=64)
    full = unit @ unit.T
    np.fill_diagonal(full, -np.inf)
    want = np.argsort(-full, axis=1)[:, :5]
    assert np.array_equal(idx, want)
    assert np.allclose(sims, np.take_along_axis(full, want, axis=1), atol=1e-6)
    # Every pair with a positive score is found, with the score the full matrix gives.
    centred = v - v.mean(0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    cos = centred @ centred.T
    np.fill_diagonal(cos, -np.inf)
    usual = similar.usual_similarity(np.sort(cos, axis=1)[:, ::-1][:, : similar.CANDIDATES])
    score = cos - (usual[:, None] + usual[None, :]) / 2
    found = {(a, b): s for a, b, s in similar.scored_pairs(v)}
    for a, b in zip(*np.nonzero(np.triu(score > 0, k=1))):
        assert found[(a, b)] == pytest.approx(score[a, b], abs=1e-5)
    assert max(found, key=found.get) == (7, 150)


def test_a_photo_saved_several_times_is_one_group(copies_copy):
    data, copies = copies_copy
    src = data / next(iter(copies.values()))
    with Image.open(src) as im:
        im = im.convert("RGB")
        im.resize((120, 120)).save(data / "river" / "v-small.jpg", quality=85)
        im.save(data / "river" / "v-q40.jpg", quality=40)
        ImageEnhance.Brightness(im).enhance(1.2).save(data / "river" / "v-bright.jpg", quality=85)
    groups = similar.find_duplicates(data)["near"]
    mine = [g for g in groups if dataset.rel(data, src) in g]
    assert len(mine) == 1 and {"river/v-small.jpg", "river/v-q40.jpg", "river/v-bright.jpg"} <= set(mine[0])
    assert len(groups) == len(copies)


def test_twenty_thousand_images_in_bounded_memory():
    v = np.random.default_rng(1).normal(size=(20_000, 32)).astype(np.float32)
    v[12_345] = v[42] * 1.01
    tracemalloc.start()
    try:
        pairs = similar.scored_pairs(v)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (pairs[0][0], pairs[0][1]) == (42, 12_345)
    assert peak < 200e6  # the full 20,000 x 20,000 matrix alone would be 1.6 GB (6.4 GB at peak without blocks)


def test_the_approximate_search_finds_the_exact_searchs_groups(monkeypatch):
    """Above EXACT_LIMIT the search is PCA + an inverted file, re-ranked: every similarity it returns is exact, and
    it finds the same look-alike groups as the exact search (here on clustered vectors with planted near copies)."""
    from otter.review.embeddings import Embeddings

    rng = np.random.default_rng(3)
    n, d = 3000, 96
    centres = rng.normal(size=(n // 50, d)).astype(np.float32)
    v = np.abs(centres[rng.integers(0, len(centres), n)] + 0.8 * rng.normal(size=(n, d)).astype(np.float32))
    v[1::100] = v[0::100] + 0.05 * rng.normal(size=(n // 100, d)).astype(np.float32)
    images, shas = [f"river/{i}.jpg" for i in range(n)], [f"{i:064x}" for i in range(n)]

    def search(limit: int):
        monkeypatch.setattr(similar, "EXACT_LIMIT", limit)
        emb = Embeddings(images, shas, v, hashes=dict(zip(images, shas)), phash={})
        return similar.groups(emb, max_hash_bits=-1)["near"]

    monkeypatch.setattr(similar, "REDUCED_DIM", 32)
    exact = search(n)
    approx = search(100)
    assert approx == exact and len(exact) >= n // 100  # every planted copy, nothing else lost or added
    unit = similar._unit_centred(v)
    idx, sims = similar.nearest(unit)
    assert np.allclose(sims, np.einsum("ij,ikj->ik", unit, unit[idx]), atol=1e-5)  # re-ranked on the full vectors


def test_not_a_duplicate_is_remembered_by_content(copies_copy):
    data, copies = copies_copy
    copy, original = next(iter(copies.items()))
    similar.mark_not_duplicate(data, copy, original)
    groups = similar.find_duplicates(data)
    assert all(copy not in g for g in groups["near"]) and len(groups["near"]) == len(copies) - 1
    dataset.relabel(data, copy, "sea" if copy.startswith("river") else "river")  # moved: still the same bytes
    assert len(similar.find_duplicates(data)["near"]) == len(copies) - 1
    stored = json.loads((data / ".otter" / similar.NOT_DUPLICATES_JSON).read_text())
    assert len(stored["pairs"]) == 1 and len(stored["pairs"][0]["sha256"]) == 2


def test_verify_json_keeps_its_shape_with_lookalike_groups(copies_copy, capsys):
    data, copies = copies_copy
    assert cli.main(["verify", "--data", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert set(report) == {"checked", "ok", "trashed", "duplicates"}
    assert set(report["duplicates"]) == {"exact", "near"}
    assert sorted(report["duplicates"]["near"]) == sorted(sorted([c, o]) for c, o in copies.items())
    assert report["checked"] == 66


def test_curate_pairs_list_lookalikes_first_and_different_classes_first(copies_copy):
    data, copies = copies_copy
    copy, original = next((c, o) for c, o in copies.items() if c.endswith("mirror.jpg"))
    moved = dataset.rel(data, dataset.relabel(data, copy, "sea" if copy.startswith("river") else "river"))
    pairs, groups, note = curate.lookalike_views(data)
    assert note == ""
    first = pairs.iloc[0]
    assert {first["left"], first["right"]} == {moved, original}  # filed under two classes: listed first
    assert first["left class"] != first["right class"] and first["look-alike"] == "yes"
    lookalikes = pairs[pairs["look-alike"] == "yes"]
    assert len(lookalikes) == len(copies)
    assert list(pairs["look-alike"]) == sorted(pairs["look-alike"], reverse=True)
    assert len(groups[groups["kind"] == "near"]) == len(copies)
    n = len(copies)
    assert curate.lookalike_summary(pairs, groups).startswith(f"{n} look-alike pairs and {len(groups)} groups of copies")
    assert curate.lookalike_summary(pairs.iloc[:0], groups.iloc[:0]).startswith("No pairs yet")

    pair = curate.pair_at(pairs, [0, 2])
    (left, left_caption), (right, right_caption) = curate.pair_images(data, pair)
    assert Path(left).is_file() and "class" in left_caption
    msg = curate.trash_lookalike(data, pair, 1)
    assert msg.startswith("Moved to the trash 1 image") and not (data / pair[1]).exists()
    assert dataset.list_trash(data)[0]["reason"] == f"look-alike of {pair[0]}"
    assert curate.trash_lookalike(data, None, 0).startswith("Click a pair")

    (data / "sea" / "new.jpg").write_bytes((data / original).read_bytes()[:-10] + b"0123456789")
    assert "1 image not searched yet" in curate.lookalike_views(data)[2]  # views never compute: the job does
