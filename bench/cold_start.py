"""App cold start: seconds from `python app.py` to the first answered predict request (gradio_client).

python bench/cold_start.py [--models models] [--image ../shared/otters/sea/00000001.jpg]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, record, start_app, wait_for_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=str(ROOT / "models"))
    ap.add_argument("--image", default=str(ROOT / ".." / "shared" / "otters" / "sea" / "00000001.jpg"))
    args = ap.parse_args()
    from gradio_client import Client, handle_file

    port = free_port()
    t0 = time.perf_counter()
    proc = start_app(ROOT, args.models, port)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_port(port, proc)
        t_listen = time.perf_counter() - t0
        client = Client(url, verbose=False)
        result = client.predict(handle_file(args.image), api_name="/predict")
        t_first = time.perf_counter() - t0
        t = time.perf_counter()
        client.predict(handle_file(args.image), api_name="/predict")
        t_second = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(30)
    print(
        f"listening after {t_listen:.1f} s; first prediction answered after {t_first:.1f} s; a warm request takes {t_second * 1000:.0f} ms"
    )
    print(f"answer: {str(result)[:120]}")
    record("cold_start", {"listen_s": t_listen, "first_predict_s": t_first, "warm_request_ms": t_second * 1000})


if __name__ == "__main__":
    main()
