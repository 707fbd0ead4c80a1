"""Synthetic 'none of these' images: formula-generated pictures and scrambled or distorted training photos.

Used to train an extra "none of these" output and to measure out-of-distribution detectors without
touching real photos of other things (those are what the project is scored on, so they must stay unseen).
Every family is a pure function of a seeded random generator, so a set can be regenerated exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

FORMULA_FAMILIES = ("noise", "gradient", "stripes", "shapes", "fractal")
PHOTO_FAMILIES = ("scrambled", "distorted")
FAMILIES = FORMULA_FAMILIES + PHOTO_FAMILIES


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(np.float64)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size))


def _to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def noise(rng: np.random.Generator, size: int) -> Image.Image:
    """Colour or grey noise, at a random grain (upsampled from a coarse grid), sometimes blurred."""
    cells = int(rng.choice([4, 8, 16, 32, size]))
    a = rng.random((cells, cells, 3)) * 255
    if rng.random() < 0.3:
        a = a[..., :1].repeat(3, 2)
    im = _to_image(a).resize((size, size), Image.NEAREST if rng.random() < 0.5 else Image.BICUBIC)
    return im.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2))) if rng.random() < 0.3 else im


def gradient(rng: np.random.Generator, size: int) -> Image.Image:
    """A linear or radial blend between two or three random colours."""
    x, y = _grid(size)
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(ang) + y * np.sin(ang)
    else:
        cx, cy = rng.random(2)
        t = np.hypot(x - cx, y - cy)
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    c0, c1, c2 = _colour(rng), _colour(rng), _colour(rng)
    a = np.where(t[..., None] < 0.5, c0 + (c1 - c0) * 2 * t[..., None], c1 + (c2 - c1) * (2 * t[..., None] - 1))
    return _to_image(a)


def stripes(rng: np.random.Generator, size: int) -> Image.Image:
    """Sine gratings, square stripes or checkerboards in two random colours."""
    x, y = _grid(size)
    ang, freq = rng.uniform(0, np.pi), rng.uniform(2, 20)
    u = np.sin(2 * np.pi * freq * (x * np.cos(ang) + y * np.sin(ang)))
    kind = rng.integers(3)
    if kind == 1:
        u = np.sign(u)
    elif kind == 2:
        u = np.sign(u) * np.sign(np.sin(2 * np.pi * freq * (-x * np.sin(ang) + y * np.cos(ang))))
    t = (u[..., None] + 1) / 2
    c0, c1 = _colour(rng), _colour(rng)
    return _to_image(c0 + (c1 - c0) * t)


def shapes(rng: np.random.Generator, size: int) -> Image.Image:
    """A few random ellipses, rectangles, polygons and lines on a flat background."""
    im = Image.new("RGB", (size, size), tuple(int(v) for v in _colour(rng)))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 8))):
        box = sorted(rng.integers(0, size, 2)), sorted(rng.integers(0, size, 2))
        xy = [box[0][0], box[1][0], box[0][1] + 2, box[1][1] + 2]
        fill = tuple(int(v) for v in _colour(rng))
        kind = rng.integers(4)
        if kind == 0:
            d.ellipse(xy, fill=fill)
        elif kind == 1:
            d.rectangle(xy, fill=fill)
        elif kind == 2:
            d.polygon([tuple(map(int, p)) for p in rng.integers(0, size, (int(rng.integers(3, 7)), 2))], fill=fill)
        else:
            d.line([tuple(map(int, p)) for p in rng.integers(0, size, (2, 2))], fill=fill, width=int(rng.integers(1, 8)))
    return im


def fractal(rng: np.random.Generator, size: int) -> Image.Image:
    """Multi-octave value noise (Perlin-like clouds, marble, terrain) through a random colour map."""
    total = np.zeros((size, size))
    amp, base = 1.0, int(rng.integers(2, 5))
    for octave in range(5):
        cells = base * 2**octave
        layer = np.asarray(Image.fromarray(rng.random((cells, cells)).astype(np.float32)).resize((size, size), Image.BICUBIC))
        total += amp * layer
        amp *= rng.uniform(0.4, 0.7)
    total = (total - total.min()) / max(np.ptp(total), 1e-9)
    if rng.random() < 0.4:  # marble-like veins
        x, _ = _grid(size)
        total = (np.sin(2 * np.pi * (x * rng.uniform(1, 6) + 3 * total)) + 1) / 2
    stops = np.sort(rng.random(4))
    stops[0], stops[-1] = 0, 1
    cols = np.stack([_colour(rng) for _ in stops])
    a = np.stack([np.interp(total, stops, cols[:, c]) for c in range(3)], -1)
    return _to_image(a)


def scrambled(rng: np.random.Generator, size: int, photo: Image.Image) -> Image.Image:
    """A training photo cut into a grid of tiles, shuffled (and some tiles flipped): local texture, no object."""
    g = int(rng.choice([3, 4, 6, 8]))
    tile = max(size // g, 1)
    a = np.asarray(photo.convert("RGB").resize((tile * g, tile * g), Image.BILINEAR))
    tiles = [a[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile] for i in range(g) for j in range(g)]
    order = rng.permutation(len(tiles))
    tiles = [tiles[k][::-1] if rng.random() < 0.3 else tiles[k] for k in order]
    rows = [np.concatenate(tiles[r * g : (r + 1) * g], 1) for r in range(g)]
    return Image.fromarray(np.concatenate(rows, 0)).resize((size, size), Image.BILINEAR)


def distorted(rng: np.random.Generator, size: int, photo: Image.Image) -> Image.Image:
    """A training photo changed beyond recognition: swirled pixels, inverted or swapped colours, posterised."""
    im = photo.convert("RGB").resize((size, size), Image.BILINEAR)
    a = np.asarray(im).astype(np.float64)
    kind = rng.integers(4)
    if kind == 0:  # pixel shuffle within rows and columns: colours stay, shape goes
        a = a[rng.permutation(size)][:, rng.permutation(size)]
    elif kind == 1:  # swirl: rotate each point by an angle that falls off with the radius
        x, y = np.meshgrid(np.arange(size) - size / 2, np.arange(size) - size / 2)
        r, th = np.hypot(x, y), np.arctan2(y, x) + rng.uniform(4, 12) * np.exp(-np.hypot(x, y) / (size / 3))
        xs = np.clip((r * np.cos(th) + size / 2).astype(int), 0, size - 1)
        ys = np.clip((r * np.sin(th) + size / 2).astype(int), 0, size - 1)
        a = a[ys, xs]
    elif kind == 2:
        a = 255 - a[..., rng.permutation(3)]
    else:
        im = ImageOps.posterize(im, int(rng.integers(1, 3)))
        a = np.asarray(ImageOps.solarize(im, int(rng.integers(64, 192)))).astype(np.float64)[..., rng.permutation(3)]
    return _to_image(a)


def synthetic_images(
    n: int,
    size: int = 128,
    seed: int = 0,
    families: Sequence[str] = FAMILIES,
    photos: Sequence[Image.Image] | None = None,
) -> list[tuple[str, Image.Image]]:
    """`n` (family, image) pairs, families taken in turn; photo families are skipped when no `photos` are given."""
    families = [f for f in families if f in FORMULA_FAMILIES or (f in PHOTO_FAMILIES and photos)]
    unknown = set(families) - set(FAMILIES)
    if unknown or not families:
        raise ValueError(f"unknown or no image families {sorted(unknown)}; choose from {', '.join(FAMILIES)}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fam = families[i % len(families)]
        if fam in PHOTO_FAMILIES:
            photo = photos[int(rng.integers(len(photos)))]
            out.append((fam, globals()[fam](rng, size, photo)))
        else:
            out.append((fam, globals()[fam](rng, size)))
    return out


def write_negatives(dest: Path, n: int, size: int, seed: int = 0, photos: Sequence[Image.Image] | None = None) -> list[Path]:
    """Save `n` synthetic images as PNG files in `dest` (for an extra "none of these" training class)."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (fam, im) in enumerate(synthetic_images(n, size, seed, photos=photos)):
        paths.append(dest / f"{fam}-{i:05d}.png")
        im.save(paths[-1])
    return paths
