"""Helpers shared by the benchmarks: timing and merging numbers into bench/results.json."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from tests.servers import free_port, start_app, wait_for_port  # noqa: E402,F401  (used by the benchmarks)

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
