"""Look-alikes: which rule groups edited copies with their originals and leaves different photos apart? The
embedding score (`otter.similar`) alone, a perceptual hash alone, and the two together (either one says so).

    python bench/lookalikes.py [--data ../shared/otters] [--plantings 6] [--show]

For each planting (seed 0, 1, ...), into a copy of the photos: one edited copy of each of 10 random photos (centre
crop, off-centre crop, mirror, 10° rotation, grey, a pasted box, 1/4 downscale + JPEG 30, blur, brighter and more
contrast, mirror + crop), and 4 versions of each of 3 other photos (60% size, JPEG 40, brighter, mirrored and
cropped): a photo found on several web sites. Embeddings as `otter.embeddings` computes them (kept by
content in --cache, so a rerun computes nothing); groups as `otter.similar` forms them (look-alike pairs, joined):
by the embedding score alone, by a perceptual hash (imagehash) alone, and by either; the default row goes through
`otter.similar.groups` itself. Counted: single copies grouped with
their original (of 10), photos whose 4 versions all share its group (of 3), and other groups (no planted image
in them: look-alikes already in the sample photos, or different photos put together). `--show` lists the
default's other groups and the copies it misses.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")


def _crop(im: Image.Image, frac: float, cx: float = 0.5, cy: float = 0.5) -> Image.Image:
    w, h = im.size
    cw, ch = int(w * frac), int(h * frac)
    x0, y0 = int((w - cw) * cx), int((h - ch) * cy)
    return im.crop((x0, y0, x0 + cw, y0 + ch))


def _box(im: Image.Image) -> Image.Image:
    im = im.copy()
    w, h = im.size
    ImageDraw.Draw(im).rectangle([int(w * 0.55), int(h * 0.6), int(w * 0.95), int(h * 0.95)], fill=(240, 240, 240))
    return im


def _small_jpeg(im: Image.Image, path: Path) -> None:
    im.resize((max(16, im.width // 4), max(16, im.height // 4)), Image.BILINEAR).save(path, quality=30)


EDITS = {
    "crop centre 75%": lambda im: _crop(im, 0.75),
    "crop corner 60%": lambda im: _crop(im, 0.6, 0.0, 0.2),
    "mirror": lambda im: ImageOps.mirror(im),
    "rotate 10°": lambda im: im.rotate(10, resample=Image.BICUBIC),
    "grey": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "pasted box": _box,
    "1/4 size, JPEG 30": None,  # saved by _small_jpeg
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(3)),
    "brighter, more contrast": lambda im: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.3)).enhance(1.3),
    "mirror + crop 80%": lambda im: ImageOps.mirror(_crop(im, 0.8, 0.3, 0.5)),
}


VERSIONS = {
    "60%": lambda im: im.resize((im.width * 6 // 10, im.height * 6 // 10)),
    "jpeg40": None,
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "mirror+crop": lambda im: ImageOps.mirror(_crop(im, 0.9, 0.0, 0.5)),
}


def plant(data: Path, seed: int) -> tuple[dict[str, str], list[list[str]]]:
    """Edited copies ({copy: original}) and version groups ([original, 4 versions]), as class/file."""
    from otter.data import dataset

    rng = np.random.default_rng(seed)
    images = dataset.list_images(data)
    picks = [images[int(i)] for i in rng.choice(len(images), len(EDITS) + 3, replace=False)]
    copies = {}
    for k, (src, edit) in enumerate(zip(picks, EDITS.values())):
        dest = src.parent / f"copy{k:02d}-{src.stem}.jpg"
        with Image.open(src) as im:
            im = im.convert("RGB")
            if edit is None:
                _small_jpeg(im, dest)
            else:
                edit(im).save(dest, quality=90)
        copies[dataset.rel(data, dest)] = dataset.rel(data, src)
    versions = []
    for k, src in enumerate(picks[len(EDITS) :]):
        group = [dataset.rel(data, src)]
        with Image.open(src) as im:
            im = im.convert("RGB")
            for name, edit in VERSIONS.items():
                dest = src.parent / f"version{k}-{name}-{src.stem}.jpg"
                (im if edit is None else edit(im)).save(dest, quality=40 if edit is None else 85)
                group.append(dataset.rel(data, dest))
        versions.append(group)
    return copies, versions


def union(n: int, pairs: list[tuple[int, int, float]], threshold: float) -> list[set[int]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, s in pairs:
        if s >= threshold:
            parent[find(i)] = find(j)
    by: dict[int, set[int]] = {}
    for i in range(n):
        by.setdefault(find(i), set()).add(i)
    return [g for g in by.values() if len(g) > 1]


def count(groups: list[set[int]], copies: dict[int, int], versions: list[set[int]]) -> dict:
    planted = set(copies) | set(copies.values()) | set().union(*versions)
    return {
        "copies_grouped": sum(any(c in g and o in g for g in groups) for c, o in copies.items()),
        "versions_grouped": sum(any(v <= g for g in groups) for v in versions),
        "other_groups": sum(1 for g in groups if not (g & planted)),
        "largest_group": max((len(g) for g in groups), default=0),
    }


def hamming_pairs(codes: np.ndarray, max_bits: int) -> list[tuple[int, int, float]]:
    """(i, j, 1.0) for every pair of 64-bit hashes within `max_bits` bits (all pairs: a few hundred images)."""
    bits = np.bitwise_count(codes[:, None] ^ codes[None, :])
    i, j = np.nonzero(np.triu(bits <= max_bits, k=1))
    return [(int(a), int(b), 1.0) for a, b in zip(i, j)]


def hashes(paths: list[Path], kind: str) -> np.ndarray:
    """64-bit imagehash hashes (phash, dhash, whash) of the images, as loaded everywhere else."""
    import imagehash

    from otter.data.images import load_image

    fn = {"phash": imagehash.phash, "dhash": imagehash.dhash, "whash": imagehash.whash}[kind]
    return np.array([int(str(fn(load_image(p))), 16) for p in paths], dtype=np.uint64)


def embed_cached(paths: list[Path], cache: Path, flip: bool = True) -> np.ndarray:
    """Embeddings of `paths` as `otter.embeddings` computes them, kept by content in `cache` (a folder of its own:
    the plantings are the same bytes every run, so a rerun computes nothing)."""
    from otter.data.manifest import sha256_file
    from otter.review import embeddings as emb

    spec = emb.spec(flip)
    path = cache / f"{emb.spec_key(spec)}.safetensors"
    known = emb.load_cache(path, spec)
    shas = [sha256_file(p) for p in paths]
    todo = sorted({sha: i for i, sha in reversed(list(enumerate(shas))) if sha not in known}.values())
    if todo:
        vectors, failed = emb.compute([paths[i] for i in todo], flip=flip)
        assert not failed, failed
        known |= {shas[i]: v for i, v in zip(todo, vectors)}
        path.parent.mkdir(parents=True, exist_ok=True)
        for other in path.parent.glob("*.safetensors"):  # save_cache removes other specs' files: keep them
            if other != path:
                other.rename(other.with_suffix(".keep"))
        emb.save_cache(path, spec, known)
        for kept in path.parent.glob("*.keep"):
            kept.rename(kept.with_suffix(".safetensors"))
    return np.stack([known[sha] for sha in shas]).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--plantings", type=int, default=6)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "otter-bench-lookalikes"), help="embeddings kept here")
    ap.add_argument("--show", action="store_true", help="list the default's groups without a planted image, and its misses")
    args = ap.parse_args()

    from otter.data import dataset
    from otter.data.manifest import sha256_file
    from otter.review import embeddings as emb
    from otter.review import similar

    rows: dict[str, list[dict]] = {}
    per_edit: dict[str, list[dict]] = {}
    nn_hits = []
    load = os.getloadavg()[0]
    default = f"**the default: score >= {similar.NEAR_SCORE:.2f} or pHash within {similar.MAX_HASH_BITS} bits (similar.groups)**"
    for seed in range(args.plantings):
        with tempfile.TemporaryDirectory(prefix="otter-bench-lookalikes-") as tmp:
            data = Path(tmp) / "data"
            shutil.copytree(args.data, data, ignore=shutil.ignore_patterns(".*"))
            copies, versions = plant(data, seed)
            paths = dataset.list_images(data)
            images = [dataset.rel(data, p) for p in paths]
            n, idx = len(images), {r: i for i, r in enumerate(images)}
            t = time.monotonic()
            vectors = embed_cached(paths, Path(args.cache))
            unflipped = embed_cached(paths, Path(args.cache), flip=False)
            print(f"planting {seed}: {n} images, embeddings {time.monotonic() - t:.0f}s (cache: {args.cache})", flush=True)
            c = {idx[k]: idx[v] for k, v in copies.items()}
            vs = [{idx[x] for x in g} for g in versions]
            scored, score_of = similar._scores(vectors)
            candidates = {(i, j) for i, j, _ in scored}
            centred = similar.unit_centred(vectors)
            codes = {kind: hashes(paths, kind) for kind in ("phash", "dhash", "whash")}
            for (k, o), name in zip(c.items(), EDITS):
                a, b = min(k, o), max(k, o)
                bits = {kind: int(np.bitwise_count(h[a] ^ h[b])) for kind, h in codes.items()}
                per_edit.setdefault(name, []).append({"score": round(score_of(a, b), 3), **bits})
            unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            sim = unit @ unit.T
            np.fill_diagonal(sim, -1)
            nn_hits.append(sum(int(sim[k].argmax()) == o for k, o in c.items()))

            def add(name: str, pairs: list, threshold: float = 0.5, n=n, c=c, vs=vs) -> None:
                rows.setdefault(name, []).append(count(union(n, pairs, threshold), c, vs))

            for th in (0.15, 0.18, 0.20, 0.22):
                add(f"embeddings alone, score >= {th:.2f}" + (" (the default before)" if th == 0.20 else ""), scored, th)
            add("embeddings without mirror averaging, score >= 0.20", similar.scored_pairs(unflipped), 0.20)
            for bits in (4, 8):
                add(f"pHash alone, within {bits} bits", hamming_pairs(codes["phash"], bits))
            emb_pairs = [(i, j, 1.0) for i, j, s in scored if s >= 0.20]
            for bits in (2, 4, 6, 8, 10, 12):
                add(f"score >= 0.20 or pHash within {bits} bits", emb_pairs + hamming_pairs(codes["phash"], bits))
            close4 = hamming_pairs(codes["phash"], 4)
            add("score >= 0.18 or pHash within 4 bits", [(i, j, 1.0) for i, j, s in scored if s >= 0.18] + close4)
            add(
                "score >= 0.20 or (pHash within 4 bits, among the 12 nearest)",
                emb_pairs + [p for p in close4 if p[:2] in candidates],
            )
            add(
                "score >= 0.20 or (pHash within 4 bits and centred cosine >= 0.3)",
                emb_pairs + [p for p in close4 if centred[p[0]] @ centred[p[1]] >= 0.3],
            )
            unflipped_pairs = [(i, j, 1.0) for i, j, s in similar.scored_pairs(unflipped) if s >= 0.20]
            add("without mirror averaging: score >= 0.20 or pHash within 4 bits", unflipped_pairs + close4)
            for kind in ("dhash", "whash"):
                add(f"score >= 0.20 or {kind} within 4 bits", emb_pairs + hamming_pairs(codes[kind], 4))
            # The default end to end through the library: the embeddings with their pHashes -> similar.groups.
            shas = [sha256_file(p) for p in paths]
            e = emb.Embeddings(images, shas, vectors, hashes=dict(zip(images, shas)))
            e.phash = {sha: int(code) for sha, code in zip(shas, codes["phash"])}
            found = [{idx[x] for x in g} for g in similar.groups(e)["near"]]
            rows.setdefault(default, []).append(count(found, c, vs))
            if args.show:
                planted = set(c) | set(c.values()) | set().union(*vs)
                for g in found:
                    if not g & planted:
                        print("  other group:", " ".join(sorted(images[i] for i in g)), flush=True)
                missed = [
                    f"{images[k]} ({name})" for (k, o), name in zip(c.items(), EDITS) if not any(k in g and o in g for g in found)
                ]
                print("  copies missed:", ", ".join(missed) or "none", flush=True)
    print(json.dumps({"load": load, "nearest_neighbour_is_original": nn_hits, "copy_score_and_hash_bits_per_edit": per_edit}))
    print(f"\n{args.plantings} plantings (seeds 0-{args.plantings - 1}) among the sample photos; load average {load:.1f}\n")
    print(
        "| method | copies grouped (of 10) | plantings with >= 9 | photos with all 4 versions grouped (of 3) | other groups | largest group |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rs in rows.items():
        cells = [" / ".join(str(r[k]) for r in rs) for k in ("copies_grouped", "versions_grouped", "other_groups")]
        mean = np.mean([r["copies_grouped"] for r in rs])
        nine = sum(r["copies_grouped"] >= 9 for r in rs)
        print(
            f"| {name} | {cells[0]} (mean {mean:.1f}) | {nine} of {len(rs)} | {cells[1]} | {cells[2]} | {max(r['largest_group'] for r in rs)} |"
        )


if __name__ == "__main__":
    main()
