"""Take docs/duplicates.png: Curate › Duplicates in the real app, over a copy of the sample photos with one planted
copy (a river photo shrunk to 1/4 and saved at JPEG quality 30, filed under sea), its pair clicked.

    python docs/duplicates.py [--data ../shared/otters] [--out docs/duplicates.png] [--cache DIR]

--cache: a folder of cached embeddings (bench/lookalikes.py's) copied in first, so only the planted copy is computed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

ORIGINAL = "river/00000012.jpg"
COPY = "sea/copy-of-river-00000012.jpg"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "duplicates.png"))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "otter-bench-lookalikes"))
    args = ap.parse_args()

    from conftest import browser_page, serving
    from otter.review import embeddings

    with tempfile.TemporaryDirectory(prefix="otter-docs-duplicates-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(args.data, data, ignore=shutil.ignore_patterns(".*"))
        with Image.open(data / ORIGINAL) as im:
            im.convert("RGB").resize((im.width // 4, im.height // 4), Image.BILINEAR).save(data / COPY, quality=30)
        cached = Path(args.cache) / embeddings.cache_path(data).name
        if cached.is_file():
            embeddings.cache_path(data).parent.mkdir(parents=True)
            shutil.copyfile(cached, embeddings.cache_path(data))
        with serving(data, Path(tmp) / "models") as url, browser_page(url, height=1100) as page:
            page.get_by_role("tab", name="Curate").click()
            page.get_by_role("tab", name="Duplicates").click()
            page.locator("#dup-find").click()
            cell = page.locator('#dup-pairs [data-testid^="cell-"]').filter(has_text=COPY).first
            cell.wait_for(timeout=600_000)
            row = cell.get_attribute("data-testid").split("-")[1]
            page.locator(f'#dup-pairs [data-testid="cell-{row}-0"]').click()
            page.locator("#dup-right").filter(has_text=COPY).wait_for()
            page.locator("#dup-left").filter(has_text=ORIGINAL).wait_for()
            page.wait_for_timeout(1500)  # let the two images finish loading
            page.screenshot(path=args.out, full_page=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
