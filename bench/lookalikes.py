"""Look-alikes by embedding similarity: which threshold groups edited copies with their originals and leaves
different photos apart? Compared with a plain cosine threshold and with the perceptual hash used before.

    python bench/lookalikes.py [--data ../shared/otters] [--plantings 3] [--show 0.20]

For each planting (seed 0, 1, ...), into a copy of the photos: one edited copy of each of 10 random photos (centre
crop, off-centre crop, mirror, 10° rotation, grey, a pasted box, 1/4 downscale + JPEG 30, blur, brighter and more
contrast, mirror + crop), and 4 versions of each of 3 other photos (60% size, JPEG 40, brighter, mirrored and
cropped): a photo found on several web sites. Embeddings as `otter.embeddings` computes them; groups as
`otter.similar` forms them (pairs scoring at least the threshold, joined). Counted: single copies grouped with
their original (of 10), photos whose 4 versions all share its group (of 3), and other groups (no planted image
in them: look-alikes already in the sample photos, or different photos put together). `--show T` lists the
other groups at threshold T.
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


def cosine_pairs(v: np.ndarray) -> list[tuple[int, int, float]]:
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    sim = u @ u.T
    i, j = np.nonzero(np.triu(sim > 0.5, k=1))
    return list(zip(i.tolist(), j.tolist(), sim[i, j].tolist()))


def phash_pairs(data: Path, images: list[str]) -> list[tuple[int, int, float]]:
    """(i, j, 1 - Hamming distance / 64) of the 64-bit perceptual hashes (the look-alike finder before)."""
    import imagehash

    from otter.data.images import load_image

    bits = np.array([imagehash.phash(load_image(data / r)).hash.flatten() for r in images], dtype=bool)
    sim = 1.0 - (bits[:, None, :] != bits[None, :, :]).sum(-1) / 64.0
    i, j = np.nonzero(np.triu(sim >= 0.8, k=1))
    return list(zip(i.tolist(), j.tolist(), sim[i, j].tolist()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--plantings", type=int, default=3)
    ap.add_argument("--show", type=float, help="list the groups without a planted image at this threshold")
    args = ap.parse_args()

    from otter.data import dataset
    from otter.review import embeddings as emb
    from otter.review import similar

    rows: dict[str, list[dict]] = {}
    per_edit: dict[str, list[float]] = {}
    nn_hits = []
    load = os.getloadavg()[0]
    for seed in range(args.plantings):
        with tempfile.TemporaryDirectory(prefix="otter-bench-lookalikes-") as tmp:
            data = Path(tmp) / "data"
            shutil.copytree(args.data, data, ignore=shutil.ignore_patterns(".*"))
            copies, versions = plant(data, seed)
            paths = dataset.list_images(data)
            images = [dataset.rel(data, p) for p in paths]
            idx = {r: i for i, r in enumerate(images)}
            t = time.monotonic()
            vectors, _ = emb.compute(paths)
            print(f"planting {seed}: {len(images)} images, embeddings {time.monotonic() - t:.0f}s", flush=True)
            c = {idx[k]: idx[v] for k, v in copies.items()}
            vs = [{idx[x] for x in g} for g in versions]
            scored = similar.scored_pairs(vectors)
            by_pair = {(i, j): s for i, j, s in scored}
            for (k, o), name in zip(c.items(), EDITS):
                per_edit.setdefault(name, []).append(round(by_pair.get((min(k, o), max(k, o)), float("nan")), 3))
            unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            sim = unit @ unit.T
            np.fill_diagonal(sim, -1)
            nn_hits.append(sum(int(sim[k].argmax()) == o for k, o in c.items()))
            for th in (0.10, 0.15, 0.18, 0.20, 0.22, 0.25, 0.30):
                rows.setdefault(f"embeddings, score >= {th:.2f}", []).append(count(union(len(images), scored, th), c, vs))
            cos = cosine_pairs(vectors)
            for th in (0.80, 0.85, 0.90, 0.95):
                rows.setdefault(f"embeddings, plain cosine >= {th:.2f}", []).append(count(union(len(images), cos, th), c, vs))
            rows.setdefault("perceptual hash within 4 bits (before)", []).append(
                count(union(len(images), phash_pairs(data, images), 1 - 4 / 64), c, vs)
            )
            if args.show is not None:
                planted = set(c) | set(c.values()) | set().union(*vs)
                for g in union(len(images), scored, args.show):
                    if not g & planted:
                        print("  other group:", " ".join(sorted(images[i] for i in g)), flush=True)
    print(json.dumps({"load": load, "nearest_neighbour_is_original": nn_hits, "copy_scores_per_edit": per_edit}))
    print(f"\n{args.plantings} plantings (seeds 0-{args.plantings - 1}) among the sample photos; load average {load:.1f}\n")
    print("| method | copies grouped (of 10) | photos with all 4 versions grouped (of 3) | other groups | largest group |")
    print("| --- | --- | --- | --- | --- |")
    for name, rs in rows.items():
        cells = [" / ".join(str(r[k]) for r in rs) for k in ("copies_grouped", "versions_grouped", "other_groups")]
        print(f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} | {max(r['largest_group'] for r in rs)} |")


if __name__ == "__main__":
    main()
