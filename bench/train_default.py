"""Reproduce the shipped default model: the default recipe (EfficientNet-Lite0 from the packaged ImageNet weights)
on all of ../shared/otters, then its calibration and "not sure" threshold from the recipe's cross-validation.

    python bench/train_default.py --cv bench/runs/18-linear-head/recipe_search_run18_linear_head.jsonl
        [--data ../shared/otters] [--out models/otters]

A model trained on every photo has no held-out photos of its own, so (as `otter.model.honest` documents) its temperature
is fitted on the recipe's out-of-fold predictions and its threshold is the training photos' 95th-percentile score
times the median ratio that each cross-validation fold measured (bench/recipe_search.py, "ood" of each row).

Prints training time and peak memory; stores float16 weights and the recipe's cross-validated accuracy in model.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

from otter.config import PRECISION_CHOICES  # noqa: E402
from otter.model.honest import refit_model_folder  # noqa: E402
from otter.model.io import META  # noqa: E402
from otter.model.train import TrainConfig, train  # noqa: E402


def cv_summary(rows: list[dict]) -> dict:
    acc = np.array([r["acc"] for r in rows])
    return {
        "folds": len(rows),
        "runs": 1,
        "accuracy_mean": round(float(acc.mean()), 3),
        "accuracy_std": round(float(acc.std()), 3),
        "accuracy_tta_mean": round(float(np.mean([r["acc_tta"] for r in rows])), 3),
        "fold_accuracy": [round(float(a), 3) for a in acc],
    }


def honesty_fallback(cv_file: Path, rows: list[dict]) -> dict:
    from bench.ood import oof_temperature

    temperature, cal = oof_temperature(cv_file, rows[0]["name"])
    ratio = float(np.median([r["ood"]["threshold_over_train_q95"] for r in rows]))
    return {
        "temperature": temperature,
        "threshold_over_train_q95": ratio,
        "source": f"cross-validation: temperature from {cal['source']}; threshold ratio, median of {len(rows)} folds "
        f"({cv_file.name})",
        "calibration": {k: cal[k] for k in ("ece_before", "ece_after", "nll_before", "nll_after", "n")},
    }


def _is_recipe(run: dict, cfg: TrainConfig) -> bool:
    """Whether a bench/recipe_search.py row's config is the recipe `cfg` trains (lists read as tuples)."""
    keys = ("arch", "sizes", "epochs", "frozen_epochs", "lr", "freeze_bn", "mixup", "head")
    return all((tuple(run[k]) if isinstance(run.get(k), list) else run.get(k)) == getattr(cfg, k) for k in keys)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/otters")
    ap.add_argument("--out", default="models/otters")
    ap.add_argument("--cv", required=True, help="bench/recipe_search.py rows of the default recipe (5 folds)")
    ap.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    args = ap.parse_args()
    cv_file = Path(args.cv)
    cfg = TrainConfig(valid_pct=0.0, precision=args.precision)
    rows = [r for r in map(json.loads, cv_file.read_text().splitlines()) if _is_recipe(r.get("config", {}), cfg)]
    if not rows:
        raise SystemExit(f"{cv_file} has no cross-validation of the default recipe {cfg}")
    t = time.time()
    result = train(
        args.data,
        cfg,
        args.out,
        half=True,
        on_event=lambda e: (
            e.type in ("stage", "epoch")
            and print(f"{e.stage:<22} epoch {e.epoch}/{e.epochs} loss {e.train_loss or 0:.3f} {e.elapsed:.0f}s", flush=True)
        ),
    )
    seconds = time.time() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    refit_model_folder(result.model_dir, args.data, honesty_fallback(cv_file, rows))
    cv = cv_summary(rows) | {"source": f"bench/RESULTS.md ({cv_file.name})"}
    meta_path = Path(result.model_dir) / META
    meta = json.loads(meta_path.read_text())
    meta["cv"] = cv
    meta["metrics"]["accuracy"] = cv["accuracy_mean"]
    meta["metrics"]["accuracy_source"] = f"{cv['folds']}-fold cross-validation of this recipe"
    meta["train_peak_memory_mb"] = round(peak_mb)
    meta["train_seconds"] = round(seconds, 1)
    meta_path.write_text(json.dumps(meta, indent=1))
    size_mb = sum(f.stat().st_size for f in Path(result.model_dir).iterdir()) / 1e6
    print(f"trained in {seconds:.0f}s, peak memory {peak_mb:.0f} MB, model folder {size_mb:.1f} MB")
    print(json.dumps({"cv": cv, "calibration": meta["calibration"], "ood": meta["ood"]}))


if __name__ == "__main__":
    main()
