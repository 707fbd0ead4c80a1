"""How much of the from-scratch recipe's ECE is noise, and does any scaling beat none? From stored predictions.

    python bench/runs/30-ood-calibration/ece_noise.py [--rows ROWS.jsonl] [--recipe xr18_norrc_mixup0.2]

Reads the 5-fold out-of-fold probabilities that bench/recipe_search.py stored for the recipe (run 2 by default).
Noise floor: the ECE (15 bins) that a perfectly calibrated model with these confidences would still show, from 500
simulated label sets (`otter.model.calibrate.ece_noise_floor`'s simulation, its mean and 90th percentile), on all
photos and on random subsets (seed 0) of 105 and 75 of them; and where the measured ECE falls among those draws.
Cross-fitted calibration: each method is fitted on four folds' out-of-fold predictions and applied to the fifth;
ECE and NLL over all photos. Methods: none; temperature (`otter.model.calibrate.fit_temperature` on the log
probabilities); Platt scaling of the log-odds (unpenalised logistic regression); isotonic regression of the second
class's probability (NLL with probabilities clipped to [0.001, 1]). No training: seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]  # the repository root
sys.path.insert(0, str(ROOT))

RUN2 = ROOT / "bench" / "runs" / "02-scratch-recipes-2" / "recipe_search_run2.jsonl"


def simulated_eces(conf: np.ndarray, draws: int = 500, seed: int = 0) -> np.ndarray:
    """ECE of `draws` label sets in which each answer is right with probability `conf` (as ece_noise_floor draws)."""
    from otter.model import calibrate

    rng = np.random.default_rng(seed)
    two = np.stack([1 - conf, conf], 1)
    return np.array([calibrate.ece(two, (rng.random(len(conf)) < conf).astype(int)) for _ in range(draws)])


def nll(probs: np.ndarray, y: np.ndarray, floor: float = 1e-9) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], floor, 1)).mean())


def main() -> None:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    from otter.model import calibrate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=str(RUN2))
    ap.add_argument("--recipe", default="xr18_norrc_mixup0.2")
    args = ap.parse_args()
    rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.strip()]
    rows = sorted((r for r in rows if r["name"] == args.recipe), key=lambda r: r["fold"])
    keys = [(Path(p).parent.name, r["fold"], v) for r in rows for p, v in r["oof"].items()]
    classes = sorted({cls for cls, _, _ in keys})
    probs = np.array([v for _, _, v in keys])
    y = np.array([classes.index(cls) for cls, _, _ in keys])
    fold = np.array([f for _, f, _ in keys])
    measured = calibrate.ece(probs, y)
    logp = np.log(np.clip(probs, 1e-12, 1))
    in_sample = calibrate.calibration_record(logp, y)  # T fitted on all of them, as bench/ood.py --fit-from does
    print(
        f"{args.recipe}: {len(y)} photos, {len(rows)} folds, ECE {measured:.3f}, NLL {nll(probs, y):.3f}; with T = "
        f"{in_sample['temperature']:.2f} fitted on all of them: ECE {in_sample['ece_after']:.3f}, NLL {in_sample['nll_after']:.3f}"
    )

    conf = probs.max(1)
    for n in (len(conf), 105, 75):
        sub = conf if n == len(conf) else conf[np.random.default_rng(0).choice(len(conf), n, replace=False)]
        e = simulated_eces(sub)
        print(f"noise floor on {n} photos: mean ECE {e.mean():.3f}, 90th percentile {np.quantile(e, 0.9):.3f}")
        if n == len(conf):
            for value in (measured, in_sample["ece_after"]):
                print(f"  share of the draws below an ECE of {value:.3f}: {(e < value).mean():.2f}")

    odds = (logp[:, 1] - logp[:, 0]).reshape(-1, 1)
    out = {name: np.zeros_like(probs) for name in ("none", "temperature", "Platt", "isotonic")}
    for f in sorted(set(fold)):
        tr, te = fold != f, fold == f
        out["none"][te] = probs[te]
        out["temperature"][te] = calibrate.softmax(logp[te], calibrate.fit_temperature(logp[tr], y[tr]))
        out["Platt"][te] = LogisticRegression(C=1e6).fit(odds[tr], y[tr]).predict_proba(odds[te])
        q = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(probs[tr, 1], y[tr]).predict(probs[te, 1])
        out["isotonic"][te] = np.stack([1 - q, q], 1)
    for name, p in out.items():
        per_fold = np.mean([calibrate.ece(p[fold == f], y[fold == f]) for f in sorted(set(fold))])
        print(
            f"cross-fitted {name:>11}: ECE {calibrate.ece(p, y):.3f} (per fold {per_fold:.3f}), "
            f"NLL {nll(p, y, 1e-3 if name == 'isotonic' else 1e-9):.3f}"
        )


if __name__ == "__main__":
    main()
