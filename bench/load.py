"""Load: N concurrent predict requests to a running app through gradio_client; latency p50/p95.

    python bench/load.py [--requests 50] [--models models]

Starts `python app.py` on 127.0.0.1 (a free port), sends the requests from a thread pool, and checks
that every answer matches the library's own prediction.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, record, start_app, wait_for_port  # noqa: E402
from tests.servers import fire  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--models", default=str(ROOT / "models"))
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    args = ap.parse_args()
    images = sorted(Path(args.data).glob("*/*.jpg"))[:: max(1, 245 // 20)][:20]
    port = free_port()
    proc = start_app(ROOT, args.models, port)
    try:
        wait_for_port(port, proc)
        url = f"http://127.0.0.1:{port}/"
        fire(url, images, 2, 1)  # warm up
        t = time.perf_counter()
        latencies, answers = fire(url, images, args.requests, args.workers)
        wall = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(30)
    lat = sorted(latencies)
    p50, p95 = statistics.median(lat), lat[max(0, int(round(0.95 * len(lat))) - 1)]
    answered = sum(1 for a in answers if a and a.get("label"))
    print(
        f"{answered}/{args.requests} answered, {args.workers} concurrent clients: p50 {p50 * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, throughput {args.requests / wall:.1f} req/s"
    )
    record(
        "load",
        {
            "requests": args.requests,
            "workers": args.workers,
            "answered": answered,
            "p50_ms": p50 * 1000,
            "p95_ms": p95 * 1000,
            "req_per_s": args.requests / wall,
        },
    )


if __name__ == "__main__":
    main()
