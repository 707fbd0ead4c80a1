"""What each curation action costs at 1,000, 20,000 and 100,000 photos (issue 26): time and peak memory per
action, and the 20,000 / 1,000 ratio, on synthetic sets of small distinct JPEGs.

    python bench/scale.py --out bench/runs/36-scale [--sizes 1000 20000] [--catalog-only 100000] [--vectors 100000]

Each size runs in its own process (its memory apart). A set is made once under --work (64 px JPEGs: a random 8 x 8
colour field, smoothed; distinct by construction), half in each class. Per size:
- first catalog: `catalog.sync(full=True)` on a set without one, against `sha256sum` over the same files (warm page
  cache for both, same run);
- refresh: what one Curate refresh reads (counts line, class list, a page of a class, a page of the trash);
- move, trash, restore 60 photos through `otter.app.curate` (one transaction each); a refresh right after a move
  (nothing is listed again: the move recorded the times of the folders it changed);
- upload 1 photo; upload 1 after 5 files were copied in by hand (they are hashed once, by the sync);
- a full scan after hand edits (every file statted);
- with embeddings (sizes up to 20,000): the vectors are synthetic (clustered random 1280-d, written into the real
  cache file by the catalog's hashes, with random pHashes), since computing real ones for 20,000 images takes
  ~25 minutes of both cores: the look-alike search once after them, a warm Duplicates open, a warm "More like this",
  and a Duplicates open after a move (the same contents: nothing searched again).
--vectors N: the look-alike search alone on N synthetic vectors (approximate above similar.EXACT_LIMIT; up to 20,000
also the exact search, in the same run, as the baseline: same groups, share of its pairs, time).
--train N: training's data-side peak memory at 224 px over N photos, now and as before (1.5 GB cache, lists);
--workers N: one fine-tuning epoch on N sample photos with and without DataLoader workers.
Peak memory is the process's peak resident size during the action less its size before (sampled every 10 ms).
Timings are on the shared 2-core machine, busy with other work: noisy, compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIELDS = ["size", "action", "seconds", "peak_mb", "note"]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(fn):
    """(result, seconds, peak resident MB above the start) of fn()."""
    start, peak, stop = rss_mb(), [0.0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - t0
        stop.set()
        t.join()
    return out, seconds, max(0.0, max(peak[0], rss_mb()) - start)


def make_set(root: Path, n: int) -> None:
    from PIL import Image

    done = root / ".made"
    if done.is_file() and done.read_text() == str(n):
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(n)
    for cls in ("river", "sea"):
        (root / cls).mkdir(parents=True)
    for i in range(n):
        field = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        cls = "river" if i % 2 else "sea"
        Image.fromarray(field).resize((64, 64), Image.BILINEAR).save(root / cls / f"img{i:06d}.jpg", quality=85)
    done.write_text(str(n))


def fresh_copy(src: Path, dest: Path) -> Path:
    """A copy of the made set without any catalog (hard links: cheap, same bytes)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, copy_function=os.link, ignore=shutil.ignore_patterns(".made"))
    return dest


def refresh(root: Path) -> None:
    from otter.app import curate
    from otter.data import dataset

    curate.counts_markdown(root)
    classes = dataset.list_classes(root)
    curate.class_page(root, classes[0], 1)
    curate.trash_page(root, 1)


def settle() -> None:
    from otter.data import folder_scan

    time.sleep(folder_scan.RACY_NS / 1e9 + 0.02)


def one_size(n: int, work: Path, catalog_only: bool) -> list[dict]:
    from otter.app import curate
    from otter.data import catalog

    rows = []

    def row(action, seconds, peak, note=""):
        rows.append({"size": n, "action": action, "seconds": round(seconds, 4), "peak_mb": round(peak, 1), "note": note})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    made = work / f"made-{n}"
    _, s, _ = measure(lambda: make_set(made, n))
    root = fresh_copy(made, work / f"set-{n}")
    files = [str(p) for p in sorted(root.glob("*/*.jpg"))]
    _, s_sum, _ = measure(
        lambda: subprocess.run(
            ["xargs", "-0", "sha256sum"], input="\0".join(files).encode(), stdout=subprocess.DEVNULL, check=True
        )
    )
    row("sha256sum of every file", s_sum, 0)
    _, s, peak = measure(lambda: catalog.sync(root, full=True))
    row("first catalog", s, peak, f"{s_sum / s:.2f}x the speed of sha256sum")
    settle()
    times = []
    for _ in range(5):
        _, s, peak = measure(lambda: refresh(root))
        times.append((s, peak))
    row("Curate refresh", *sorted(times)[2], "median of 5")
    river = [f"river/img{i:06d}.jpg" for i in range(1, 120, 2)]
    _, s, peak = measure(lambda: curate.move(root, river, "sea"))
    row("move 60 photos", s, peak)
    _, s, peak = measure(lambda: refresh(root))
    row("Curate refresh right after a move", s, peak, "the move recorded its folders' times: nothing listed again")
    moved = [f"sea/img{i:06d}.jpg" for i in range(1, 120, 2)]
    _, s, peak = measure(lambda: curate.move(root, moved, "river"))
    row("move 60 photos back", s, peak)
    sea = [f"sea/img{i:06d}.jpg" for i in range(0, 120, 2)]
    _, s, peak = measure(lambda: curate.delete(root, sea))
    row("trash 60 photos", s, peak)
    ids = [i["id"] for i in curate.trash_page(root, 1)[0]]
    _, s, peak = measure(lambda: curate.restore(root, ids))
    row("restore 60 photos", s, peak)
    up = work / "upload"
    up.mkdir(exist_ok=True)
    from PIL import Image

    for k in range(6):
        Image.new("RGB", (64, 64), (k * 40, 200, 100 + n % 50)).save(up / f"new{k}.jpg")
    _, s, peak = measure(lambda: curate.upload(root, "river", [up / "new0.jpg"]))
    row("upload 1 photo", s, peak)
    for k in range(1, 6):
        shutil.copy(up / f"new{k}.jpg", root / "sea" / f"by-hand{k}.jpg")
    Image.new("RGB", (64, 64), "purple").save(up / "new9.jpg")
    _, s, peak = measure(lambda: curate.upload(root, "river", [up / "new9.jpg"]))
    row("upload 1 photo after 5 copied in by hand", s, peak, "the 5 are hashed once, by the sync")
    catalog.forget_full_sync(root)
    _, s, peak = measure(lambda: catalog.sync(root, full=True))
    row("full scan (data scan), nothing new", s, peak, "every file statted, none read")
    if not catalog_only:
        rows += with_embeddings(n, root, row)
    return rows


def synthetic_vectors(n: int, dim: int = 1280, seed: int = 0) -> np.ndarray:
    """Clustered like real embeddings: 1 centre per 50 images, each image its centre plus noise; every 100th image a
    near copy of the one before."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 50), dim)).astype(np.float32)
    v = centres[rng.integers(0, len(centres), n)] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    v[1::100] = v[0::100][: len(v[1::100])] + 0.05 * rng.normal(size=(len(v[1::100]), dim)).astype(np.float32)
    return np.abs(v)  # pooled ReLU-like features are non-negative


def with_embeddings_caches(root: Path) -> None:
    """Synthetic vectors and pHashes for every image of `root`, written into the real caches by the catalog's hashes."""
    from otter.data import catalog
    from otter.review import embeddings, perceptual

    with catalog.connection(root) as con:
        shas = sorted({r["sha256"] for r in catalog.rows(con)})
    vectors = synthetic_vectors(len(shas))
    embeddings.save_cache(embeddings.cache_path(root), embeddings.spec(), dict(zip(shas, vectors)))
    rng = np.random.default_rng(1)
    perceptual.save_cache(perceptual.cache_path(root), {s: int(h) for s, h in zip(shas, rng.integers(0, 2**63, len(shas)))})


def with_embeddings(n: int, root: Path, row) -> list[dict]:
    from otter.app import curate

    with_embeddings_caches(root)
    _, s, peak = measure(lambda: curate.lookalike_views(root))
    from otter.review import similar

    kind = "exact" if n <= similar.EXACT_LIMIT else f"PCA{similar.REDUCED_DIM} + IVF, re-ranked"
    row("look-alikes after embeddings (search, once)", s, peak, f"synthetic vectors, faiss {kind}")
    _, s, peak = measure(lambda: curate.lookalike_views(root))
    row("Duplicates open, warm", s, peak)
    curate.more_like_this(root, "river/img000001.jpg")
    _, s, peak = measure(lambda: curate.more_like_this(root, "river/img000003.jpg"))
    row('"More like this", warm', s, peak)
    curate.move(root, [f"river/img{i:06d}.jpg" for i in range(1, 120, 2)], "sea")
    _, s, peak = measure(lambda: curate.lookalike_views(root))
    row("Duplicates open after moving 60", s, peak, "same contents: the kept pairs")
    return []


def vectors_only(n: int) -> list[dict]:
    """The look-alike search alone on n synthetic vectors (with random pHashes); above similar.EXACT_LIMIT and up to
    EXACT_BASELINE also the exact search in the same run, as the baseline: its time, and whether the approximate
    search finds the same look-alike groups and which share of its candidate pairs."""
    from otter.review import similar
    from otter.review.embeddings import Embeddings

    v = synthetic_vectors(n)
    images = [f"{'river' if i % 2 else 'sea'}/img{i:06d}.jpg" for i in range(n)]
    shas = [f"{i:064x}" for i in range(n)]
    codes = np.random.default_rng(2).integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    phash = {s: int(c) for s, c in zip(shas, codes)}
    planted = {(k - 1, k) for k in range(1, n, 100)}
    rows = []

    def one(kind: str):
        emb = Embeddings(images, shas, v, hashes=dict(zip(images, shas)), phash=phash)
        (_, c), s, peak = measure(lambda: similar.candidates(emb))
        near = similar.groups(emb)["near"]
        found = {(int(a), int(b)) for a, b, sc in zip(c["a"], c["b"], c["score"]) if sc >= similar.NEAR_SCORE}
        note = f"{kind}; {len(planted & found)} of {len(planted)} planted copies found; {len(near)} groups"
        row = {"size": n, "action": f"look-alike search on synthetic vectors ({kind})", "seconds": round(s, 2)}
        rows.append(row | {"peak_mb": round(peak), "note": note})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        return c, near, s

    exact = n <= similar.EXACT_LIMIT
    c, near, s = one(
        "exact" if exact else f"PCA{similar.REDUCED_DIM} + IVF, probe {similar.PROBE_SHARE:.0%}, re-ranked x{similar.REFINE}"
    )
    if not exact and n <= EXACT_BASELINE:
        limit, similar.EXACT_LIMIT = similar.EXACT_LIMIT, n
        similar._kept.clear()  # else the approximate search's pairs are reused (`candidates` derives from a search)
        try:
            ce, near_e, s_e = one("exact, the baseline")
        finally:
            similar.EXACT_LIMIT = limit
        pairs, pairs_e = set(zip(c["a"].tolist(), c["b"].tolist())), set(zip(ce["a"].tolist(), ce["b"].tolist()))
        rows[0]["note"] += (
            f"; against the exact search: same look-alike groups {near == near_e}, "
            f"{len(pairs & pairs_e) / max(1, len(pairs_e)):.3f} of its candidate pairs, {s_e / s:.2f}x faster"
        )
    return rows


EXACT_BASELINE = 20_000  # sizes up to which `vectors_only` also runs the exact search (about 1.3e13 flops at 100,000)


def embed_speed(n: int) -> list[dict]:
    """Images per second of `embeddings.compute` (decoding in worker processes) against its floor in the same run:
    decoding alone, and the network alone on the decoded batches (the floor with perfect overlap is the slower of
    the two; without any, their sum), and against decoding in this process (DECODE_WORKERS 0)."""
    import torch

    from otter.data.images import load_image
    from otter.model.backbones import get
    from otter.model.preprocess import preprocess
    from otter.review import embeddings

    otters = Path(__file__).resolve().parents[2] / "shared" / "otters"  # the sample photos, beside the checkout
    photos = sorted(otters.glob("*/*.jpg"))
    paths = [photos[i % len(photos)] for i in range(n)]
    net, device = embeddings.network()
    bb = get(embeddings.BACKBONE)
    mean, std = torch.tensor(bb.mean).view(3, 1, 1), torch.tensor(bb.std).view(3, 1, 1)
    embeddings.compute(paths[:32])  # warm: the network is loaded
    t = time.perf_counter()
    decoded = [preprocess(load_image(p), embeddings.SIZE, mean, std) for p in paths]
    t_decode = time.perf_counter() - t
    t = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, n, embeddings.BATCH_SIZE):
            x = torch.stack(decoded[lo : lo + embeddings.BATCH_SIZE]).contiguous(memory_format=torch.channels_last)
            (net(x) + net(x.flip(-1))) / 2
    t_forward = time.perf_counter() - t
    _, t_workers, peak = measure(lambda: embeddings.compute(paths))
    old = embeddings.DECODE_WORKERS
    embeddings.DECODE_WORKERS = 0
    _, t_inline, _ = measure(lambda: embeddings.compute(paths))
    embeddings.DECODE_WORKERS = old
    rate = lambda s: n / s  # noqa: E731
    note = (
        f"decode {rate(t_decode):.1f}/s, forward {rate(t_forward):.1f}/s; floor with overlap {min(rate(t_decode), rate(t_forward)):.1f}/s, "
        f"without {n / (t_decode + t_forward):.1f}/s; decoding in this process {rate(t_inline):.1f}/s"
    )
    return [
        {
            "size": n,
            "action": "embeddings, images/s (workers)",
            "seconds": round(rate(t_workers), 2),
            "peak_mb": round(peak),
            "note": note,
        }
    ]


def train_data_memory(n: int, work: Path, before: bool) -> list[dict]:
    """Peak memory of training's data side at 224 px (the default recipe's size) over n photos: one epoch of the
    training DataLoader and one of the validation one (decode, resize, the cache, collate, normalise; augmentation
    off, no network: its memory does not depend on n), then the honesty fit's pass over every image
    (`ResizedImages`, read 32 at a time). `before`: as before this change, the cache bounded at 1.5 GB and the
    honesty fit's images all held in lists."""
    from otter.model import loading
    from otter.model.recipes import TrainConfig

    made = work / f"made-{n}"
    make_set(made, n)
    items, labels, classes = loading.collect_items(made)
    valid_idx = loading.split_valid(len(items), 0.2, 42)
    cfg = TrainConfig(aug=0.0)
    if before:
        loading.CACHE_BYTES = 1_500_000_000

    def run():
        dls = loading.make_dataloaders(items, labels, classes, valid_idx, 224, cfg)
        for _ in dls.train:
            pass
        for _ in dls.valid:
            pass
        held = set(valid_idx)
        for idx in ([i for i in range(len(items)) if i not in held], valid_idx):
            images = loading.ResizedImages([items[i] for i in idx], 224)
            if before:
                images = images[:]  # every image in a list, as the honesty fit took them
            for lo in range(0, len(images), 32):
                images[lo : lo + 32]
        return loading._resized_bytes

    cached, s, peak = measure(run)
    kind = "before: cache 1.5 GB, lists" if before else f"now: cache {loading.CACHE_BYTES / 1e6:.0f} MB, read lazily"
    note = f"{kind}; {cached / 1e6:.0f} MB of resized images cached; workers {loading.LOADER_WORKERS}"
    return [
        {"size": n, "action": f"training data side, peak ({'before' if before else 'now'})", "seconds": round(s, 1)}
        | {"peak_mb": round(peak), "note": note}
    ]


def loader_workers(n: int) -> list[dict]:
    """Seconds of one epoch of fine-tuning (the default recipe: EfficientNet-Lite0 at 224 px, bs 16, in bf16 where
    the CPU has it) over n sample photos with a cold cache, decoding in the training process (workers 0) against
    DataLoader workers (2), alternating, twice each: whether workers pay on this machine."""
    import tempfile

    from otter.model import loading
    from otter.model.device import autocast
    from otter.model.recipes import TrainConfig
    from otter.model.train import make_learner, training_device, training_precision

    otters = Path(__file__).resolve().parents[2] / "shared" / "otters"
    items, labels, classes = loading.collect_items(otters)
    items, labels = items[:n], labels[:n]
    valid_idx = loading.split_valid(len(items), 0.2, 42)
    cfg = TrainConfig()
    times: dict[int, list[float]] = {0: [], 2: []}
    with tempfile.TemporaryDirectory() as workdir, autocast(training_device(), training_precision(cfg)):
        for workers in (0, 2, 0, 2):
            loading.LOADER_WORKERS = workers
            loading.clear_cache()
            dls = loading.make_dataloaders(items, labels, classes, valid_idx, 224, cfg, device=training_device())
            learn = make_learner(dls, classes, cfg, workdir)
            learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == "Recorder"))
            learn.unfreeze()
            t = time.perf_counter()
            learn.fit(1, 1e-4)
            times[workers].append(time.perf_counter() - t)
            print(workers, times[workers][-1], file=sys.stderr, flush=True)
    best = {w: min(ts) for w, ts in times.items()}
    note = (
        f"one epoch, cold cache, {len(items) - len(valid_idx)} training + {len(valid_idx)} validation photos; "
        f"workers 0: {', '.join(f'{t:.1f}' for t in times[0])} s, workers 2: {', '.join(f'{t:.1f}' for t in times[2])} s; "
        f"workers 2 / workers 0 (best of 2): {best[2] / best[0]:.2f}x"
    )
    return [
        {"size": n, "action": "training epoch, decode in 2 DataLoader workers", "seconds": round(best[2], 1)}
        | {"peak_mb": 0, "note": note}
    ]


def summary(rows: list[dict]) -> str:
    by = {(r["size"], r["action"]): r for r in rows}
    sizes = sorted({r["size"] for r in rows})
    actions = list(dict.fromkeys(r["action"] for r in rows))
    head = "| action | " + " | ".join(f"{s:,} s (MB)" for s in sizes) + " | 20,000 / 1,000 |"
    lines = [head, "|" + "---|" * (len(sizes) + 2)]
    for a in actions:
        cells = [f"{by[(s, a)]['seconds']:.3f} ({by[(s, a)]['peak_mb']:.0f})" if (s, a) in by else "" for s in sizes]
        ratio = ""
        if (1000, a) in by and (20000, a) in by and by[(1000, a)]["seconds"] > 0:
            ratio = f"{by[(20000, a)]['seconds'] / by[(1000, a)]['seconds']:.2f}x"
        lines.append(f"| {a} | " + " | ".join(cells) + f" | {ratio} |")
    notes = sorted({f"- {r['action']} at {r['size']:,}: {r['note']}" for r in rows if r["note"]})
    return "\n".join(lines + [""] + notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 20000])
    ap.add_argument("--catalog-only", type=int, nargs="*", default=[100000])
    ap.add_argument("--vectors", type=int, nargs="*", default=[100000])
    ap.add_argument("--embed", type=int, nargs="*", default=[256])
    ap.add_argument("--workers", type=int, nargs="*", default=[], help="one epoch with and without loader workers")
    ap.add_argument("--train", type=int, nargs="*", default=[], help="training's data-side memory at these sizes, now and before")
    ap.add_argument("--work", type=Path, default=Path("/tmp/otter-scale"))
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-kind", default="full", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        if args.one_kind == "embed":
            rows = embed_speed(args.one)
        elif args.one_kind == "vectors":
            rows = vectors_only(args.one)
        elif args.one_kind == "workers":
            rows = loader_workers(args.one)
        elif args.one_kind in ("train", "train-before"):
            rows = train_data_memory(args.one, args.work, args.one_kind == "train-before")
        else:
            rows = one_size(args.one, args.work, args.one_kind == "catalog")
        print(json.dumps(rows))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(n, "full") for n in args.sizes] + [(n, "catalog") for n in args.catalog_only]
    jobs += [(n, "vectors") for n in args.vectors] + [(n, "embed") for n in args.embed]
    jobs += [(n, kind) for n in args.train for kind in ("train-before", "train")]
    jobs += [(n, "workers") for n in args.workers]
    for n, kind in jobs:
        cmd = [sys.executable, __file__, "--out", str(args.out), "--work", str(args.work), "--one", str(n), "--one-kind", kind]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        rows += json.loads(done.stdout.strip().splitlines()[-1])
        with open(args.out / "rows.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, FIELDS)
            w.writeheader()
            w.writerows(rows)
    text = summary(rows)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
