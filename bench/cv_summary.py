"""Summaries of stored cross-validation rows (bench/recipe_search.py's JSON lines): no training, seconds to run.

    python bench/cv_summary.py ROWS.jsonl [ROWS.jsonl ...] [--recipe NAME ...] [--pool] [--ensemble]

Each (file, recipe) is one cross-validation run. Printed per run: the folds, accuracy per fold, mean ± sd over the
folds (population sd, as recipe_search.py prints it), flip-TTA accuracy, NLL and seconds per fold (means over
folds), and where the rows hold it, the "not sure" detector's share of synthetic unknowns flagged and its threshold's
ratio to the training photos' 95th percentile. --pool: the mean ± sd of every fold of the chosen runs together.
--ensemble: the accuracy of the averaged out-of-fold probabilities of the chosen runs (an ensemble of one model per run
for each photo; photos matched by class folder and file name, since the stored paths differ between machines).
--wrong: the photos that every chosen run gets wrong out of fold.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def load_runs(files: list[str], recipes: list[str] | None) -> list[tuple[str, str, list[dict]]]:
    """[(file name, recipe name, rows sorted by fold)] in file order, then first appearance of each recipe."""
    runs = []
    for f in files:
        by_name: dict[str, list[dict]] = {}
        for line in Path(f).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                by_name.setdefault(row["name"], []).append(row)
        for name, rows in by_name.items():
            if recipes is None or name in recipes:
                runs.append((Path(f).name, name, sorted(rows, key=lambda r: r["fold"])))
    return runs


def finite_mean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def photo_key(path: str) -> tuple[str, str]:
    p = Path(path)
    return p.parent.name, p.name


def out_of_fold(runs) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """The photos every run scored, their probabilities per run (runs x photos x classes) and their classes."""
    per_run = [{photo_key(p): np.array(v) for r in rows for p, v in r["oof"].items()} for _, _, rows in runs]
    common = sorted(set.intersection(*(set(d) for d in per_run)))
    classes = sorted({cls for cls, _ in common})  # fastai's vocabulary: the class folders, sorted
    probs = np.stack([np.stack([d[k] for k in common]) for d in per_run])
    return common, probs, np.array([classes.index(cls) for cls, _ in common])


def ensemble_accuracy(runs) -> tuple[float, int]:
    """Accuracy of the mean out-of-fold probabilities over `runs`, on the photos every run scored."""
    photos, probs, y = out_of_fold(runs)
    return float((probs.mean(0).argmax(1) == y).mean()), len(photos)


def always_wrong(runs) -> list[str]:
    """class/file of the photos that every run predicts wrong out of fold."""
    photos, probs, y = out_of_fold(runs)
    wrong = (probs.argmax(2) != y).all(0)
    return [f"{cls}/{name}" for (cls, name), w in zip(photos, wrong) if w]


def detector_summary(rows: list[dict]) -> str:
    """The rows' "not sure" figures (bench/recipe_search.py's "ood"), or "" when they have none."""
    ood = [r["ood"] for r in rows if r.get("ood")]
    if not ood:
        return ""
    flagged = [o["flagged_synthetic"] for o in ood]
    ratio = [o["threshold_over_train_q95"] for o in ood]
    return (
        f" | unknowns flagged {min(flagged):.2f}-{max(flagged):.2f} (mean {np.mean(flagged):.2f})"
        f" | threshold / train q95 {min(ratio):.1f}-{max(ratio):.1f} (median {np.median(ratio):.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="JSON-lines files written by bench/recipe_search.py")
    ap.add_argument("--recipe", action="append", help="only this recipe name (repeat for several)")
    ap.add_argument("--pool", action="store_true", help="also the mean ± sd of all folds of the chosen runs together")
    ap.add_argument("--ensemble", action="store_true", help="also the accuracy of their averaged out-of-fold probabilities")
    ap.add_argument("--wrong", action="store_true", help="also the photos every chosen run gets wrong out of fold")
    args = ap.parse_args()
    runs = load_runs(args.rows, args.recipe)
    if not runs:
        raise SystemExit("no rows matched")
    for fname, name, rows in runs:
        acc = np.array([r["acc"] for r in rows])
        folds = ",".join(str(r["fold"]) for r in rows)
        print(
            f"{fname} | {name} | folds {folds} | {' '.join(f'{a:.3f}' for a in acc)} | {acc.mean():.3f} ± {acc.std():.3f}"
            f" | tta {finite_mean(r.get('acc_tta') for r in rows):.3f} | nll {finite_mean(r.get('nll') for r in rows):.3f}"
            f" | {finite_mean(r.get('train_s') for r in rows):.0f} s/fold{detector_summary(rows)}"
        )
    if args.pool:
        acc = np.array([r["acc"] for _, _, rows in runs for r in rows])
        print(f"pooled over {len(runs)} runs, {len(acc)} folds: {acc.mean():.3f} ± {acc.std():.3f}")
    if args.ensemble:
        acc, n = ensemble_accuracy(runs)
        print(f"ensemble of {len(runs)} runs (mean out-of-fold probabilities, {n} photos): {acc:.3f}")
    if args.wrong:
        wrong = always_wrong(runs)
        print(f"wrong in all {len(runs)} runs: {len(wrong)} photos: {' '.join(wrong)}")


if __name__ == "__main__":
    main()
