"""The default audit (heads on embeddings) end to end: planted label flips found, and its time from a cold and a warm cache.

    python bench/audit_embeddings.py [--data ../shared/otters] [--plantings 5] [--flips 10] [--no-record]

For each planting (seed 0, 1, ...: bench/audit.py's flip_labels, 5 photos of each class moved to the other) in a
fresh copy of the photos, `otter.review.audit.audit` runs as `python -m otter audit` does, and we count the flipped
photos in the first 10 / 20 / 30 rows of its ranking (cross-class copies and look-alikes first, then labels). The
first planting starts with no embeddings cached (cold: the network sees every photo) and is then audited again
(warm); the other plantings start from the first one's cache (same bytes, so the same vectors). Times are in
process (imports excluded) and depend on the machine's load, printed with them. Appends a section to
bench/RESULTS.md (unless --no-record) and merges the numbers into bench/results.json under "audit_embeddings".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from bench import common  # noqa: E402
from bench.audit import cpu_seconds, flip_labels, hits  # noqa: E402
from otter.data import dataset  # noqa: E402
from otter.review.audit import audit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--flips", type=int, default=10)
    ap.add_argument("--plantings", type=int, default=5)
    ap.add_argument("--no-record", action="store_true", help="print only; do not write bench/RESULTS.md or results.json")
    args = ap.parse_args()
    import torch

    out: dict = {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "plantings": []}
    with tempfile.TemporaryDirectory(prefix="otter-bench-audit-emb-") as tmp:
        cache = Path(tmp) / "cache"
        for seed in range(args.plantings):
            data = Path(tmp) / f"data{seed}"
            shutil.copytree(args.data, data, ignore=shutil.ignore_patterns(".*"))
            if seed > 0:
                shutil.copytree(cache, data / ".otter" / "embeddings")
            flipped = flip_labels(data, args.flips, seed)
            row: dict = {"seed": seed, "load_before": round(os.getloadavg()[0], 1)}
            runs = ("cold", "warm") if seed == 0 else ("warm",)
            for run in runs:
                t, c = time.monotonic(), cpu_seconds()
                result = audit(data, folds=args.folds, seed=0, models_dir=Path(tmp) / "models")
                row[f"{run}_wall_s"] = round(time.monotonic() - t, 1)
                row[f"{run}_cpu_s"] = round(cpu_seconds() - c, 1)
            if seed == 0:
                shutil.copytree(data / ".otter" / "embeddings", cache)
                out["images"] = len(dataset.list_images(data))
            ranked = [r["image"] for r in result.rows]
            row |= hits(ranked, flipped)
            row["flagged"] = len(result.flagged)
            row["flipped_flagged"] = sum(r["flagged"] for r in result.rows if r["image"] in flipped)
            row["conflicts_first"] = sum(r["reason"] in ("duplicate", "near-duplicate") for r in result.rows)
            row["oof_accuracy_given_labels"] = round(result.accuracy(), 3)
            row["load_after"] = round(os.getloadavg()[0], 1)
            print(json.dumps(row), flush=True)
            out["plantings"].append(row)
    out["flips"] = args.flips
    out["folds"] = args.folds
    out["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    ps = out["plantings"]
    out["mean"] = {k: round(sum(p[k] for p in ps) / len(ps), 2) for k in ("top10", "top20", "top30")}
    print(json.dumps(out["mean"]))
    if not args.no_record:
        record(out)


def record(out: dict) -> None:
    common.record("audit_embeddings", out)  # bench/results.json: other benchmarks keep their own keys there
    ps = out["plantings"]
    lines = "\n".join(
        f"| {p['seed']} | {p['top10']} | {p['top20']} | {p['top30']} | {p['flagged']} ({p['flipped_flagged']} flipped) | "
        f"{p['conflicts_first']} | {p['oof_accuracy_given_labels']:.3f} | "
        + (f"{p['cold_wall_s']:.0f} s cold, " if "cold_wall_s" in p else "")
        + f"{p['warm_wall_s']:.1f} s warm | {p['load_before']} → {p['load_after']} |"
        for p in ps
    )
    m = out["mean"]
    section = f"""
### The default audit end to end (bench/audit_embeddings.py, {out["created"][:10]})

{out["images"]} sample photos, {out["flips"]} labels flipped per planting, the audit as `python -m otter audit` runs
it ({out["folds"]} folds; cross-class copies and look-alikes are ranked first, then labels). Planting 0 starts with an
empty embedding cache; the others reuse its vectors. Load average before → after each run (2 CPUs, shared).

| planting | top 10 | top 20 | top 30 | flagged | conflicts ranked first | out-of-fold accuracy | time | load |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{lines}

Mean flipped photos found: {m["top10"]} / {m["top20"]} / {m["top30"]} in the top 10 / 20 / 30.
"""
    insert_section(section)
    print(section)


def insert_section(section: str, before: str = "\n## Calibration and") -> None:
    """Put a section at the end of the audit part of bench/RESULTS.md (at the end if that part is not found)."""
    results_md = ROOT / "bench" / "RESULTS.md"
    text = results_md.read_text()
    at = text.find(before)
    text = text + section if at < 0 else text[:at] + section + text[at:]
    results_md.write_text(text)


if __name__ == "__main__":
    main()
