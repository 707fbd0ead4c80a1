"""Real servers for tests and benchmarks: a free port, `python app.py` in a subprocess, waiting for it to listen,
and many concurrent predict requests through gradio_client. (bench/ imports these from here.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Until something listens on 127.0.0.1:port; fails if `proc` exits first or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("app exited before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("app did not start")


def start_app(root: Path, models: str, port: int, data: str | None = None, log=None) -> subprocess.Popen:
    """`python app.py` on 127.0.0.1:port with the given models folder and data folder (default: an empty
    temporary one); its output goes to the open file `log`, or nowhere."""
    env = dict(
        os.environ,
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        OTTER_MODELS_DIR=models,
        OTTER_DATA_DIR=data or tempfile.mkdtemp(prefix="otter-bench-"),
        GRADIO_ANALYTICS_ENABLED="False",
    )
    out = log or subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=out, stderr=out)


def fire(url: str, images: list[Path], n: int, workers: int) -> tuple[list[float], list[dict]]:
    """Send n predict requests (cycling over images) with `workers` threads; returns latencies and answers.

    Each request is its own visitor: a new Client, so a new session, as each browser tab is. One Client shared
    by several threads races in gradio_client 2.7: the server closes the session's stream when its last event
    completes, and an event submitted just then on the same session is dropped (CancelledError; seen in CI)."""
    from gradio_client import Client, handle_file

    def one(i: int):
        client = Client(url, verbose=False)
        t = time.perf_counter()
        out = client.predict(handle_file(str(images[i % len(images)])), api_name="/predict")
        return time.perf_counter() - t, out

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(n)))
    return [r[0] for r in results], [r[1] for r in results]


def upload(http, url: str, paths: list[Path]) -> list[dict]:
    """Files sent to Gradio's upload route, as the FileData payloads events take."""
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    r = http.post(url + "gradio_api/upload", files=files)
    r.raise_for_status()
    return [{"path": p, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}} for p in r.json()]


def queue_call(http, url: str, fn_index: int, data: list, session: str, event_data=None, trigger_id=None) -> dict:
    """Fire event `fn_index` through the page's queue, as the page does (whatever its api_visibility), and return
    Gradio's `process_completed` message ({"success", "output": {"data" | "error"}})."""
    import json

    body = {"data": data, "event_data": event_data, "fn_index": fn_index, "trigger_id": trigger_id, "session_hash": session}
    r = http.post(url + "gradio_api/queue/join", json=body)
    r.raise_for_status()
    event_id = r.json()["event_id"]
    with http.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session}, timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                    return msg
    raise AssertionError(f"event {fn_index} never completed")
