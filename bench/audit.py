"""Does the fine-tuning audit find planted label errors? Flip 10 labels of a copy of the sample photos and compare two rankings.

    python bench/audit.py [--data ../shared/otters] [--folds 5] [--flips 10] [--seed 0]

(The default audit, heads on embeddings, is measured by bench/audit_embeddings.py.)

1. The audit with `method="finetune"` (otter.review.audit): k-fold out-of-fold probabilities ranked by cleanlab.
2. The original method, as fastai's ImageClassifierCleaner ranks: the top losses of ONE model trained on an
   80/20 split (the same quick recipe), over both its splits (otter.model.train.train's meta["review"]).

Reports how many flipped images land in each ranking's top 10/20/30, the time (wall and CPU), and the load
average, since the machine may be shared. Appends a section to bench/RESULTS.md and merges the numbers into
bench/results.json under "audit".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from bench import common  # noqa: E402
from otter.data import dataset  # noqa: E402
from otter.model.train import train  # noqa: E402
from otter.review.audit import audit, quick_config  # noqa: E402

TOPS = (10, 20, 30)


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def flip_labels(data: Path, n: int, seed: int) -> list[str]:
    """Move n images (n/2 from each of the first two classes) into the other class; returns their new class/file."""
    rng = np.random.default_rng(seed)
    classes = dataset.list_classes(data)[:2]
    picks = []  # chosen before moving any, so no image is flipped twice
    for i, cls in enumerate(classes):
        images = dataset.list_images(data, cls)
        picks += [(images[int(j)], classes[1 - i]) for j in rng.choice(len(images), n // 2, replace=False)]
    return [dataset.rel(data, dataset.relabel(data, path, target)) for path, target in picks]


def hits(ranked: list[str], flipped: list[str]) -> dict[str, int]:
    return {f"top{k}": len(set(ranked[:k]) & set(flipped)) for k in TOPS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--flips", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true", help="print only; do not write bench/RESULTS.md or results.json")
    ap.add_argument(
        "--smoke", action="store_true", help="a 1-epoch 32 px recipe, to check the script itself (implies --no-record)"
    )
    args = ap.parse_args()
    import torch

    out: dict = {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="otter-bench-audit-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(args.data, data)
        flipped = flip_labels(data, args.flips, args.seed)
        n_images = len(dataset.list_images(data))
        print(f"{n_images} images, flipped {len(flipped)}: {', '.join(flipped)}", flush=True)

        tiny = {"sizes": (32,), "epochs": 1} if args.smoke else {}
        cfg = quick_config(**tiny)
        t, c = time.monotonic(), cpu_seconds()
        result = audit(
            data,
            folds=args.folds,
            seed=args.seed,
            config=cfg,
            method="finetune",
            models_dir=Path(tmp) / "models",
            progress=lambda e: e.type == "fold" and print(f"  fold {e.fold}/{e.folds} {time.monotonic() - t:.0f}s", flush=True),
        )
        ranked = [r["image"] for r in result.rows]
        out["audit"] = {
            **hits(ranked, flipped),
            "flagged": len(result.flagged),
            "flipped_flagged": sum(r["flagged"] for r in result.rows if r["image"] in flipped),
            "oof_accuracy_given_labels": round(result.accuracy(), 3),
            "wall_s": round(time.monotonic() - t, 1),
            "cpu_s": round(cpu_seconds() - c, 1),
            "folds": args.folds,
            "recipe": {k: cfg.__dict__[k] for k in ("arch", "sizes", "epochs", "mixup", "label_smoothing", "bs", "lr")},
        }
        print("audit", json.dumps(out["audit"]), flush=True)

        base_cfg = quick_config(valid_pct=0.2, **tiny)
        t, c = time.monotonic(), cpu_seconds()
        base = train(data, base_cfg, model_dir=None)
        ranked = [r["image"] for r in base.meta["review"]]  # highest loss first, both splits
        out["top_losses"] = {
            **hits(ranked, flipped),
            "valid_accuracy": round(base.meta["metrics"]["accuracy"], 3),
            "flipped_in_valid": sum(r["split"] == "valid" for r in base.meta["review"] if r["image"] in flipped),
            "wall_s": round(time.monotonic() - t, 1),
            "cpu_s": round(cpu_seconds() - c, 1),
        }
        print("top losses", json.dumps(out["top_losses"]), flush=True)
    out["load_after"] = os.getloadavg()[0]
    out["images"] = n_images
    out["flips"] = len(flipped)
    out["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not (args.no_record or args.smoke):
        record(out)


def record(out: dict) -> None:
    common.record("audit", out)  # bench/results.json: other benchmarks keep their own keys there
    a, b = out["audit"], out["top_losses"]
    r = a["recipe"]
    section = f"""
## Audit: planted label errors found (bench/audit.py, {out["created"][:10]})

{out["images"]} sample photos, {out["flips"]} labels flipped (half each way, seed 0). How many flipped images
each ranking puts in its top 10 / 20 / 30 (target: at least 8 of 10 in the top 20 within 5 minutes):

| method | top 10 | top 20 | top 30 | flagged | accuracy | wall | CPU time |
| --- | --- | --- | --- | --- | --- | --- | --- |
| audit: {a["folds"]}-fold out-of-fold + cleanlab | {a["top10"]} | {a["top20"]} | {a["top30"]} | {a["flagged"]} ({a["flipped_flagged"]} flipped) | {a["oof_accuracy_given_labels"]:.3f} out-of-fold | {a["wall_s"]:.0f} s | {a["cpu_s"]:.0f} s |
| top losses of one model, 80/20 split, both splits | {b["top10"]} | {b["top20"]} | {b["top30"]} | – | {b["valid_accuracy"]:.3f} validation | {b["wall_s"]:.0f} s | {b["cpu_s"]:.0f} s |

Recipe of every model: {r["arch"]} from scratch, sizes {r["sizes"]}, epochs {r["epochs"]}, MixUp {r["mixup"]},
label smoothing {r["label_smoothing"]}. {out["threads"]} torch threads on {out["cpus"]} CPUs; load average
{out["load_before"]:.1f} before and {out["load_after"]:.1f} after (other jobs shared the CPUs, so wall time is an
upper bound; CPU time / threads estimates the time on an idle machine).
"""
    results_md = ROOT / "bench" / "RESULTS.md"
    with open(results_md, "a") as fh:
        fh.write(section)
    print(section)


if __name__ == "__main__":
    main()
