"""Shared fixtures: small real photo sets, synthetic images, and one tiny trained model per session."""

from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from servers import free_port

ROOT = Path(__file__).resolve().parents[1]
OTTERS = (ROOT / ".." / "shared" / "otters").resolve()

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)


def weights_bytes(model_dir: Path) -> bytes:
    """All of a model folder's weights (one file, or shards and their index), to compare before and after."""
    from otter.model.io import weight_files

    files = weight_files(model_dir)
    assert files, f"{model_dir} has no weights"
    return b"".join(f.read_bytes() for f in files)


def real_photos(cls: str, n: int) -> list[Path]:
    return sorted((OTTERS / cls).glob("*.jpg"))[:n]


@pytest.fixture(scope="session")
def otters_dir() -> Path:
    assert OTTERS.is_dir(), f"the real photos must be at {OTTERS}"
    return OTTERS


def make_small_set(dest: Path, per_class: int = 8, size: int = 64) -> Path:
    """A few real photos per class, shrunk so tests run fast."""
    for cls in ("river", "sea"):
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for p in real_photos(cls, per_class):
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
    """(model_dir, TrainResult) of a 1-epoch, 32 px model on a few real photos; shared by many tests."""
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
