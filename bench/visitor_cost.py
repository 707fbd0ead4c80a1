"""What a visitor (no owner rights) can make the app's server do, and what it costs: seconds per request for each
thing a visitor may still ask, against one /predict in the same run (the baseline), on the shipped model.

python bench/visitor_cost.py [--runs 5] [--many 200] [--out bench/runs/45-visitor-cost]

Rows: one JSON line per measurement in OUT/rows.jsonl; the summary (medians, ratio to /predict) is printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tests.servers import free_port, queue_call, upload  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--many", type=int, default=200, help="photos in one 'many photos at once' request (the limit)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "runs" / "45-visitor-cost"))
    args = ap.parse_args()
    import httpx
    from gradio_client import Client, handle_file

    from otter.app.owners import Access
    from otter.app.ui import build_app, launch

    work = Path(tempfile.mkdtemp(prefix="otter-visitor-cost-"))
    shutil.copytree(ROOT / "models" / "otters", work / "models" / "otters")
    photos = sorted((ROOT / ".." / "shared" / "otters" / "sea").glob("*.jpg"))
    demo = build_app(work / "data", work / "models", access=Access("visitors"))
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    config = demo.get_config_file()
    by_name = {demo.fns[d["id"]].name: d for d in config["dependencies"]}
    rows = []

    def timed(what: str, fn) -> None:
        t = time.perf_counter()
        ok = fn()
        rows.append({"what": what, "seconds": time.perf_counter() - t, "ok": ok})

    with httpx.Client(timeout=600) as http:
        client = Client(url, verbose=False)
        client.predict(handle_file(str(photos[0])), api_name="/predict")  # model loaded once, as at start-up
        one = upload(http, url, [photos[0]])
        many = upload(http, url, [photos[i % len(photos)] for i in range(args.many)])
        start = by_name["on_start"]
        components = {c["id"]: c for c in config["components"]}
        start_inputs = [components[i].get("props", {}).get("value") for i in start["inputs"]]
        for i in range(args.runs):
            timed("predict (baseline)", lambda i=i: bool(client.predict(handle_file(str(photos[i])), api_name="/predict")))
            timed(
                "refused owner event (Start training)",
                lambda: "owner" in str(queue_call(http, url, start["id"], start_inputs, uuid.uuid4().hex)["output"].get("error")),
            )
            explain = next(d for d in config["dependencies"] if demo.fns[d["id"]].name == "update")
            timed(
                "explain one photo",
                lambda e=explain: queue_call(http, url, e["id"], [one[0], None, True][: len(e["inputs"])], uuid.uuid4().hex)[
                    "success"
                ],
            )
        files = by_name["on_files"]
        timed(
            f"many photos at once ({args.many})",
            lambda: queue_call(http, url, files["id"], [many, None], uuid.uuid4().hex)["success"],
        )
    demo.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = statistics.median(r["seconds"] for r in rows if r["what"] == "predict (baseline)")
    for what in dict.fromkeys(r["what"] for r in rows):
        got = [r for r in rows if r["what"] == what]
        med = statistics.median(r["seconds"] for r in got)
        print(f"{what:<40} median {med:7.3f} s  x{med / base:7.1f} of /predict  ok {all(r['ok'] for r in got)}  n={len(got)}")


if __name__ == "__main__":
    main()
