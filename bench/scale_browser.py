"""The app, driven in a real browser over a 20,000-photo folder (issue 26's "done when"): seconds from each click
to its result on the page, for paging, moving and trashing a page of 60 photos, restoring, and opening Duplicates.

    python bench/scale_browser.py --out bench/runs/37-scale-browser [--n 20000]

The set is bench/scale.py's (64 px JPEGs, half in each class, made once under --work), hard-linked into a fresh
folder; its embeddings are synthetic (as in bench/scale.py: computing real ones takes ~25 minutes of both cores)
and the look-alikes are searched once before the browser opens, as the app's Find look-alikes would. Timings
include Gradio's round trip and the browser's rendering, on the shared, busy 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402  (bench/scale.py: the set and its synthetic embeddings)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/otter-scale"))
    args = ap.parse_args()
    from playwright.sync_api import expect, sync_playwright

    from otter.app import curate
    from otter.app.ui import build_app, launch
    from otter.data import catalog
    from tests.servers import free_port

    made = args.work / f"made-{args.n}"
    scale.make_set(made, args.n)
    data = scale.fresh_copy(made, args.work / f"browser-{args.n}")
    catalog.sync(data, full=True)
    scale.with_embeddings_caches(data)
    curate.lookalike_views(data)  # the search, once (the app's Find look-alikes)
    models = args.work / "browser-models"
    models.mkdir(exist_ok=True)
    rows = []
    demo = build_app(data, models)
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            expect.set_options(timeout=120_000)  # a slow step is measured, not failed
            page.goto(f"http://127.0.0.1:{port}/")

            def timed(what: str, click, check) -> None:
                t = time.perf_counter()
                click()
                check()
                rows.append({"action": what, "seconds": round(time.perf_counter() - t, 2)})
                print(json.dumps(rows[-1]), flush=True)

            status = page.locator("#curate-status")
            timed("open Curate (counts, classes, first page)", lambda: page.get_by_role("tab", name="Curate").click(),
                  lambda: expect(page.locator("#curate-page")).to_contain_text(f"{args.n // 2} images"))  # fmt: skip
            timed("next page", lambda: page.locator("#curate-next").click(),
                  lambda: expect(page.locator("#curate-page")).to_contain_text("page 2 of"))  # fmt: skip
            timed("select the page (60)", lambda: page.get_by_role("button", name="Select this page").click(),
                  lambda: expect(page.locator("#curate-selected")).to_contain_text("60 selected"))  # fmt: skip
            target = page.get_by_label("Move selected to")
            target.click()
            target.fill("sea")
            target.press("Enter")
            timed("move 60 to the other class", lambda: page.get_by_role("button", name="Move", exact=True).click(),
                  lambda: expect(status).to_contain_text("Moved 60 images"))  # fmt: skip
            page.get_by_role("button", name="Select this page").click()
            expect(page.locator("#curate-selected")).to_contain_text("60 selected")
            timed("trash 60", lambda: page.locator("#curate-delete").click(),
                  lambda: expect(status).to_contain_text("Moved to the trash 60 images"))  # fmt: skip
            timed("open the Trash", lambda: page.get_by_role("tab", name="Trash").click(),
                  lambda: expect(page.locator("#trash-gallery button.thumbnail-item")).to_have_count(60))  # fmt: skip
            for k in range(5):
                page.locator("#trash-gallery button.thumbnail-item").nth(k).click()
                expect(page.locator("#trash-selected")).to_contain_text(f"{k + 1} selected")
            timed("restore 5", lambda: page.locator("#trash-restore").click(),
                  lambda: expect(status).to_contain_text("Restored 5 images"))  # fmt: skip
            timed("open Duplicates (look-alikes kept)", lambda: page.get_by_role("tab", name="Duplicates").click(),
                  lambda: expect(page.locator("#dup-status")).to_contain_text("look-alike pair"))  # fmt: skip
            browser.close()
    finally:
        demo.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.json").write_text(json.dumps({"n": args.n, "rows": rows}, indent=1) + "\n")
    print("\n".join(f"| {r['action']} | {r['seconds']:.2f} s |" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
