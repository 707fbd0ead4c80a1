"""Embeddings of a data folder: computed once, kept by content hash, recomputed only where the bytes changed,
rebuilt when the cache file is damaged or the network's spec changes; progress and cancel."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from PIL import Image

from otter.data import dataset
from otter.model.jobs import TrainingCancelled
from otter.review import embeddings as emb


@pytest.fixture(autouse=True)
def quick_size(monkeypatch):
    """The cache's plumbing does not depend on the input size: 64 px makes these tests ~10x faster."""
    monkeypatch.setattr(emb, "SIZE", 64)


def test_second_run_computes_nothing_and_only_edited_images_are_recomputed(small_data):
    first = emb.embed_folder(small_data)
    assert first.computed == 16 and len(first.images) == 16 and not first.failed
    assert first.vectors.shape == (16, 1280) and first.vectors.dtype == np.float32
    assert emb.cache_path(small_data).is_file()

    again = emb.embed_folder(small_data)
    assert again.computed == 0
    assert again.images == first.images and np.array_equal(again.vectors, first.vectors)

    victim = dataset.list_images(small_data, "sea")[0]
    os.utime(victim, (1e9, 1e9))  # touched, same bytes: same content hash, nothing to compute
    assert emb.embed_folder(small_data).computed == 0

    with Image.open(victim) as im:
        im.rotate(90).save(victim, quality=90)  # edited: new bytes, one new vector
    edited = emb.embed_folder(small_data)
    assert edited.computed == 1
    i = edited.images.index(dataset.rel(small_data, victim))
    assert not np.allclose(edited.vectors[i], first.vectors[i])
    others = [k for k in range(16) if k != i]
    assert np.array_equal(edited.vectors[others], first.vectors[others])

    dataset.relabel(small_data, dataset.list_images(small_data, "river")[0], "sea")  # moved: same bytes
    dataset.move_to_trash(small_data, dataset.list_images(small_data, "river")[0])
    after = emb.embed_folder(small_data)
    assert after.computed == 0 and len(after.images) == 15
    assert len(emb.load_cache(emb.cache_path(small_data), emb.spec())) == 15  # the trashed image's vector is dropped


def test_same_vector_as_computing_directly_and_mirror_invariant(small_data):
    result = emb.embed_folder(small_data)
    path = dataset.list_images(small_data)[3]
    direct, failed = emb.compute([path])
    assert not failed and np.allclose(direct[0], result.vectors[3], atol=1e-5)
    mirrored = small_data / "river" / "mirrored.png"
    with Image.open(path) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    vec, _ = emb.compute([mirrored])
    cos = float(vec[0] @ direct[0] / np.linalg.norm(vec[0]) / np.linalg.norm(direct[0]))
    assert cos > 0.999  # flip averaging: a mirror image's embedding is its original's (up to PNG vs JPEG bytes)


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "garbage", "empty"])
def test_a_damaged_cache_file_is_rebuilt_not_trusted(small_data, damage):
    first = emb.embed_folder(small_data)
    path = emb.cache_path(small_data)
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[-100] ^= 0xFF  # inside the vectors: the file still loads, the checksum does not match
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"\x80\x04not a safetensors file" * 10)
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert emb.load_cache(path, emb.spec()) == {}
    rebuilt = emb.embed_folder(small_data)
    assert rebuilt.computed == 16
    assert np.allclose(rebuilt.vectors, first.vectors, atol=1e-5)
    assert len(emb.load_cache(path, emb.spec())) == 16


def test_another_spec_is_another_cache_and_replaces_the_old_one(small_data, monkeypatch):
    emb.embed_folder(small_data)
    old = emb.cache_path(small_data)
    monkeypatch.setattr(emb, "SIZE", 96)  # the preprocessing changed: every vector is stale
    new = emb.cache_path(small_data)
    assert new != old
    assert emb.embed_folder(small_data).computed == 16
    assert new.is_file() and not old.exists()


def test_progress_per_batch_and_cancel_keeps_the_work_done(small_data):
    cancel = threading.Event()
    events = []

    def progress(e):
        events.append(e)
        if e.done >= 4:
            cancel.set()  # stop after the first batch

    with pytest.raises(TrainingCancelled):
        emb.embed_folder(small_data, progress=progress, cancel=cancel, batch_size=4)
    assert [e.done for e in events] == [0, 4]
    assert len(emb.load_cache(emb.cache_path(small_data), emb.spec())) == 4

    events.clear()
    rest = emb.embed_folder(small_data, progress=events.append, batch_size=4)
    assert rest.computed == 12
    assert [e.done for e in events] == [0, 4, 8, 12] and events[-1].progress == 1.0 and events[-1].eta == 0


def test_unreadable_images_are_reported_and_copies_computed_once(small_data):
    (small_data / "sea" / "broken.jpg").write_bytes(b"not an image")
    src = dataset.list_images(small_data, "river")[0]
    (small_data / "sea" / "copy.jpg").write_bytes(src.read_bytes())
    result = emb.embed_folder(small_data)
    assert result.computed == 16  # the copy shares its original's vector
    assert list(result.failed) == ["sea/broken.jpg"] and "not an image" in result.failed["sea/broken.jpg"]
    a, b = result.images.index(dataset.rel(small_data, src)), result.images.index("sea/copy.jpg")
    assert np.array_equal(result.vectors[a], result.vectors[b])
    assert result.labels.count("sea") == 9


def test_a_folder_that_cannot_keep_the_cache_still_gets_its_embeddings(small_data, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(emb, "save_cache", read_only)
    with pytest.warns(UserWarning, match="cannot keep the embeddings"):
        result = emb.embed_folder(small_data)
    assert result.computed == 16 and result.vectors.shape == (16, 1280)
