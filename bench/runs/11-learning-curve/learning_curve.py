"""The from-scratch default recipe's learning curve, from stored cross-validation rows (no training).

2-, 3- and 5-fold accuracy against training-set size, with a power law fitted to the error and extrapolated.

    python bench/runs/11-learning-curve/learning_curve.py

Points: run 11's 2-fold and 3-fold cross-validations (this folder) and the 5-fold figure pooled over the recipe's
three 5-fold runs (run 2's xr18_norrc_mixup0.2, run 4 in float32 and in bfloat16). Training-set size: the mean over
folds, n (k - 1) / k of the 245 photos. Fit: least squares of log(error) on log(size).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RUNS = Path(__file__).resolve().parents[1]
POINTS = {  # folds: [(rows file, recipe)]
    2: [(RUNS / "11-learning-curve" / "recipe_search_run11_2fold.jsonl", "xr18_norrc_mixup0.2_bf16")],
    3: [(RUNS / "11-learning-curve" / "recipe_search_run11_3fold.jsonl", "xr18_norrc_mixup0.2_bf16")],
    5: [
        (RUNS / "02-scratch-recipes-2" / "recipe_search_run2.jsonl", "xr18_norrc_mixup0.2"),
        (RUNS / "04-bf16" / "recipe_search_run4_fp32.jsonl", "xr18_norrc_mixup0.2_fp32cpu"),
        (RUNS / "04-bf16" / "recipe_search_run4_bf16.jsonl", "xr18_norrc_mixup0.2_bf16"),
    ],
}
PHOTOS = 245


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    sizes, accs = [], []
    for folds, sources in POINTS.items():
        acc = [
            row["acc"]
            for path, recipe in sources
            for row in map(json.loads, path.read_text().splitlines())
            if row["name"] == recipe
        ]
        sizes.append(PHOTOS * (folds - 1) / folds)
        accs.append(float(np.mean(acc)))
        print(f"{folds}-fold: {len(acc)} folds, {sizes[-1]:.1f} training photos on average, accuracy {accs[-1]:.3f}")
    slope, intercept = np.polyfit(np.log(sizes), np.log(1 - np.array(accs)), 1)
    print(f"error = {np.exp(intercept):.2f} n^{slope:.2f}")
    print(f"extrapolated accuracy with all {PHOTOS} photos: {1 - np.exp(intercept) * PHOTOS**slope:.3f}")
    n90 = np.exp((np.log(0.10) - intercept) / slope)
    print(f"photos for 0.90: {n90:.0f} ({n90 / PHOTOS:.1f} times this set)")


if __name__ == "__main__":
    main()
