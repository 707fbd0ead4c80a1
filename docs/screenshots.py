"""Take the README's screenshots in the real app, over a copy of the sample photos and the shipped model:
docs/predict.png (a sea otter photo dropped on Predict), docs/curate.png (Curate › Images with "More like this"
ticked and a photo clicked) and docs/train.png (the default recipe started from the blank form, to the end).

    python docs/screenshots.py [--data ../shared/otters] [--out docs] [--only predict,curate,train]

Train runs the real default recipe on every photo: minutes on a CPU.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PREDICT_PHOTO = "sea/00000001.jpg"
TRAIN_TIMEOUT_MS = 1_800_000


def predict(page, data: Path, out: Path) -> None:
    page.get_by_role("tab", name="Predict").click()
    page.locator("#predict-image input[type=file]").set_input_files(str(data / PREDICT_PHOTO))
    page.locator("#predict-info").filter(has_text="Model").wait_for(timeout=300_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "predict.png"), full_page=True)


def curate(page, out: Path) -> None:
    page.get_by_role("tab", name="Curate").click()
    thumbs = page.locator("#curate-gallery button.thumbnail-item")
    thumbs.first.wait_for()
    page.locator("#curate-similar-on input").check()
    thumbs.nth(1).click()
    page.locator("#curate-similar button.thumbnail-item").first.wait_for(timeout=600_000)
    page.wait_for_timeout(1500)  # let the thumbnails finish loading
    page.screenshot(path=str(out / "curate.png"), full_page=True)


def train(page, out: Path) -> float:
    page.get_by_role("tab", name="Train").click()
    t = time.perf_counter()
    page.locator("#train-start").click()
    page.locator("#train-message").filter(has_text="Started training").wait_for()
    status = page.locator("#train-status")
    ends = [status.filter(has_text=s) for s in ("Done", "Training failed", "Cancelled")]
    ends[0].or_(ends[1]).or_(ends[2]).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    minutes = (time.perf_counter() - t) / 60
    if "Done" not in status.inner_text():
        raise SystemExit(f"training did not finish: {status.inner_text()}")
    page.locator("#train-compare").filter(has_text="New model").wait_for()
    page.locator("#train-zip").click()
    page.locator("#train-zip-file a").first.wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "train.png"), full_page=True)
    return minutes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--only", default="predict,curate,train")
    args = ap.parse_args()
    only, out = set(args.only.split(",")), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from conftest import browser_page, serving

    with tempfile.TemporaryDirectory(prefix="otter-docs-") as tmp:
        data, models = Path(tmp) / "data", Path(tmp) / "models"
        shutil.copytree(args.data, data, ignore=shutil.ignore_patterns(".*", "*.md"))
        shutil.copytree(ROOT / "models", models)  # the shipped model, as a fresh clone's app starts with it
        with serving(data, models) as url, browser_page(url, height=1100) as page:
            if "predict" in only:
                predict(page, data, out)
            if "curate" in only:
                curate(page, out)
            if "train" in only:
                print(f"trained in {train(page, out):.1f} minutes")
    print(f"wrote {', '.join(sorted(only))} screenshots to {out}")


if __name__ == "__main__":
    main()
