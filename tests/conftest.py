"""Shared fixtures: photos the tests make, the real sample photos for the few tests that need them, synthetic
shapes, and one tiny trained model per session.

The real photos are found through one setting, OTTER_SAMPLE_PHOTOS (default `../shared/otters` beside the
checkout): a test needs them by asking for the `otters_dir` fixture. Without them those tests are skipped, and one
line at the start of the run says how many and why; with CI=true their absence is an error instead, so CI runs
them all. Every other test uses photos it makes (`photos`), so a fresh clone's test command passes on its own."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from servers import free_port

ROOT = Path(__file__).resolve().parents[1]
PHOTOS_SETTING = "OTTER_SAMPLE_PHOTOS"
OTTERS = Path(os.environ.get(PHOTOS_SETTING) or ROOT.parent / "shared" / "otters").resolve()
CLASSES = ("river", "sea")

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)


def weights_bytes(model_dir: Path) -> bytes:
    """All of a model folder's weights (one file, or shards and their index), to compare before and after."""
    from otter.model.io import weight_files

    files = weight_files(model_dir)
    assert files, f"{model_dir} has no weights"
    return b"".join(f.read_bytes() for f in files)


def have_sample_photos() -> bool:
    return all(any((OTTERS / cls).glob("*.jpg")) for cls in CLASSES)


def real_photos(cls: str, n: int) -> list[Path]:
    """The first `n` real sample photos of a class: only for tests that ask for the `otters_dir` fixture."""
    assert have_sample_photos(), f"real_photos without the photos at {OTTERS}: the test must ask for `otters_dir`"
    return sorted((OTTERS / cls).glob("*.jpg"))[:n]


@pytest.fixture(scope="session")
def otters_dir() -> Path:
    """The real sample photos (river/, sea/). Tests that ask for it are skipped when they are missing (an error
    under CI=true): see pytest_collection_modifyitems."""
    assert have_sample_photos(), f"the real photos must be at {OTTERS} (set {PHOTOS_SETTING})"
    return OTTERS


_SKIP_LINE = pytest.StashKey[str]()


def pytest_collection_modifyitems(config, items):
    needing = [item for item in items if "otters_dir" in getattr(item, "fixturenames", ())]
    if not needing or have_sample_photos():
        return
    why = f"the sample photos are not at {OTTERS} (set {PHOTOS_SETTING} to their folder)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise pytest.UsageError(f"CI=true: {len(needing)} tests need the real photos, but {why}")
    for item in needing:
        item.add_marker(pytest.mark.skip(reason=f"needs the real photos: {why}"))
    config.stash[_SKIP_LINE] = f"{len(needing)} of {len(items)} tests skipped: {why}"


def pytest_collection_finish(session):
    line = session.config.stash.get(_SKIP_LINE, None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter:
        reporter.write_line(line, yellow=True, bold=True)


def made_photo(cls: str, i: int) -> Image.Image:
    """A made-up 'photo' of class river (warm tones) or sea (cool tones): a smooth random scene, a few shapes and
    sensor-like noise, 200-320 x 150-240 px. Each (cls, i) is its own picture, different enough from every other
    that none is a look-alike of another."""
    rng = np.random.default_rng(i + (0 if cls == "river" else 100_000))
    w, h = int(rng.integers(200, 321)), int(rng.integers(150, 241))
    warm = cls == "river"
    tint = np.array([1.0, 0.8, 0.5]) if warm else np.array([0.45, 0.7, 1.0])
    field = rng.random((int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)) * tint * 255
    im = Image.fromarray(field.astype(np.uint8)).resize((w, h), Image.BICUBIC)
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        box = [x0, y0, x0 + int(rng.integers(15, w // 2)), y0 + int(rng.integers(15, h // 2))]
        colour = tuple(int(c) for c in rng.random(3) * tint * 255)
        shape = int(rng.integers(3))
        if shape == 0:
            d.ellipse(box, fill=colour)
        elif shape == 1:
            d.rectangle(box, fill=colour)
        else:
            d.line(box, fill=colour, width=int(rng.integers(2, 9)))
    pixels = np.asarray(im, dtype=np.float32) + rng.normal(0, 8, (h, w, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


_MADE = Path(tempfile.mkdtemp(prefix="otter-test-photos-"))
atexit.register(shutil.rmtree, _MADE, ignore_errors=True)


def made_photos(cls: str, n: int) -> list[Path]:
    """The first `n` photos of class river or sea that the tests make (JPEGs named like the sample photos,
    00000001.jpg, ...): made on first use, the same in every run."""
    folder = _MADE / cls
    folder.mkdir(exist_ok=True)
    paths = [folder / f"{i + 1:08d}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        if not path.exists():
            made_photo(cls, i).save(path, quality=90)
    return paths


def make_small_set(dest: Path, per_class: int = 8, size: int = 64) -> Path:
    """A few made photos per class (river, sea), shrunk so tests run fast."""
    for cls in CLASSES:
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for p in made_photos(cls, per_class):
            with Image.open(p) as im:
                im.convert("RGB").resize((size, size)).save(dest / cls / p.name, quality=90)
    return dest


@pytest.fixture
def small_data(tmp_path) -> Path:
    return make_small_set(tmp_path / "data")


def shape_image(kind: str, seed: int, size: int = 48) -> Image.Image:
    """A synthetic image: a red disc ('disc') or a blue square ('square') on a noisy background."""
    rng = np.random.default_rng(seed)
    bg = (rng.random((size, size, 3)) * 60 + 100).astype(np.uint8)
    im = Image.fromarray(bg)
    d = ImageDraw.Draw(im)
    r = size // 4 + int(rng.integers(-3, 4))
    cx, cy = size // 2 + int(rng.integers(-5, 6)), size // 2 + int(rng.integers(-5, 6))
    if kind == "disc":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(220, 30, 30))
    else:
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=(30, 30, 220))
    return im


def make_shapes(dest: Path, per_class: int = 12) -> Path:
    for kind in ("disc", "square"):
        (dest / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape_image(kind, i + (1000 if kind == "square" else 0)).save(dest / kind / f"{kind}{i:03d}.png")
    return dest


@pytest.fixture
def shapes_data(tmp_path) -> Path:
    return make_shapes(tmp_path / "shapes")


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """(model_dir, TrainResult) of a 1-epoch, 32 px model on a few made photos; shared by many tests."""
    from otter.model.train import TrainConfig, train

    base = tmp_path_factory.mktemp("tiny")
    data = make_small_set(base / "data", per_class=8, size=64)
    cfg = TrainConfig(pretrained=False, arch="resnet18", sizes=(32,), epochs=1, bs=8, mixup=0.0)
    result = train(data, cfg, base / "models" / "tiny")
    return result.model_dir, result


@pytest.fixture
def model_copy(tiny_trained, tmp_path) -> Path:
    """A private copy of the tiny model folder, in its own models directory, to modify freely."""
    dest = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_trained[0], dest)
    return dest


@contextmanager
def running_app(tiny_model: Path, base: Path, per_class: int = 3, size: int = 48, access=None, **launch_kwargs):
    """A real Gradio server on 127.0.0.1 over a small photo set and a copy of `tiny_model`:
    yields {"url", "data", "models"} and closes the server afterwards. `access`: who is an owner
    (`otter.app.owners.Access`; default: local, everyone)."""
    data = make_small_set(base / "data", per_class=per_class, size=size)
    shutil.copytree(tiny_model, base / "models" / "tiny")
    with serving(data, base / "models", access=access, **launch_kwargs) as url:
        yield {"url": url, "data": data, "models": base / "models"}


@contextmanager
def serving(data: Path, models: Path, access=None, **launch_kwargs):
    """The app over `data` and `models`, served by a real Gradio server on 127.0.0.1: yields its URL.
    `access`: who is an owner (`otter.app.owners.Access`; default: from the environment, i.e. local)."""
    from otter.app.ui import build_app, launch

    demo = build_app(data, models, access=access)
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def fake_imagenet_weights(tmp_path, monkeypatch):
    """Local resnet18 and resnet34 'ImageNet' weights files (random, in torchvision's format and file names),
    so the pretrained path runs offline: without them, training with pretrained=True tries to download."""
    import torch
    import torchvision

    torch_home = tmp_path / "torch"
    ckpt = torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    for arch, weights in (("resnet18", torchvision.models.ResNet18_Weights), ("resnet34", torchvision.models.ResNet34_Weights)):
        torch.save(getattr(torchvision.models, arch)().state_dict(), ckpt / Path(weights.DEFAULT.url).name)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))


@contextmanager
def browser_page(url: str, height: int = 1000):
    """A page of Debian's headless chromium (Playwright) opened at `url`, 1280 x `height`, 60 s timeouts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.set_default_timeout(60_000)
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()


def captions_cut(page, gallery: str) -> list[str]:
    """The captions of the gallery `gallery` (a CSS selector) that a user cannot read whole: cut off with "…", or
    (in the first row of thumbnails) below the gallery's visible box."""
    return page.evaluate(
        """(sel) => {
          const box = document.querySelector(sel + ' .grid-wrap').getBoundingClientRect();
          const thumbs = [...document.querySelectorAll(sel + ' button.thumbnail-item')];
          const top = thumbs.length ? thumbs[0].getBoundingClientRect().top : 0;
          return thumbs.map(b => b.querySelector('.caption-label')).filter(c => c).filter(c => {
            const firstRow = Math.abs(c.closest('button').getBoundingClientRect().top - top) < 2;
            return c.scrollWidth > c.clientWidth + 1 || (firstRow && c.getBoundingClientRect().bottom > box.bottom + 1);
          }).map(c => c.textContent);
        }""",
        gallery,
    )


def outlined(page, gallery: str) -> list[int]:
    """The thumbnails of `gallery` (a CSS selector) a user sees outlined, by index: our outline of a selected image,
    or Gradio's ring (the image clicked last)."""
    return page.evaluate(
        """(sel) => [...document.querySelectorAll(sel + ' button.thumbnail-item')].map((b, i) => {
            const s = getComputedStyle(b);
            const ring = s.getPropertyValue('--ring-color').trim();
            return (s.outlineStyle !== 'none' && s.outlineWidth !== '0px') || (ring !== '' && ring !== 'transparent') ? i : -1;
          }).filter(i => i >= 0)""",
        gallery,
    )


@pytest.fixture(autouse=True)
def no_job_outlives_its_test(request):
    """Every background job (training, audit, embeddings) a test starts ends with that test: one left running
    in this process would share the 2 cores with the next test's training and slow it many times over."""
    yield
    from otter.model.jobs import running_jobs

    for job in running_jobs():
        print(f"\n{request.node.nodeid} left {job.noun} running: cancelling it", flush=True)
        job.cancel()
        job.wait(300)


@pytest.fixture
def fixed_oauth(monkeypatch):
    """Off a Space, Gradio's "Sign in with Hugging Face" signs in the machine's own HF user (asking huggingface.co
    who that is); here it signs in the user named by `fixed_oauth.user` instead, offline."""
    import time

    import gradio.oauth

    class Fixed:
        user = "ann"

    def profile():
        return {
            "access_token": "test-token",
            "token_type": "bearer",
            "expires_in": 3600,
            "scope": "openid profile",
            "expires_at": int(time.time()) + 3600,
            "userinfo": {"preferred_username": Fixed.user, "name": Fixed.user, "picture": "", "profile": ""},
        }

    monkeypatch.setattr(gradio.oauth, "_get_mocked_oauth_info", profile)
    return Fixed
