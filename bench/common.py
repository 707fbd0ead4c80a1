"""Helpers shared by the benchmarks: timing and merging numbers into bench/results.json."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def median_time(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def record(key: str, values: dict) -> None:
    """Merge `values` under `key` in bench/results.json (read-modify-write, atomic rename)."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = values
    tmp = RESULTS.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, RESULTS)


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
