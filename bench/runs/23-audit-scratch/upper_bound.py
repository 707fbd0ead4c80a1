"""How well would a better from-scratch model rank planted label flips? An upper bound from stored predictions.

    python bench/runs/23-audit-scratch/upper_bound.py [--data ../shared/otters] [--seed 0] [--flips 10]

Takes the 5-fold out-of-fold probabilities that bench/recipe_search.py stored for run 2's recipes (trained on the
*clean* labels, so optimistic: a real audit's models train on the flipped ones), plants the same label flips as
bench/audit.py (`flip_labels`' choice for the seed: 5 photos of each class moved to the other), ranks every photo by
cleanlab's self-confidence under the flipped labels (lowest first, as the audit ranks) and counts the flipped photos
in the top 10 / 20 / 30; also how many of the flipped photos the recipe's out-of-fold prediction gets right (their
true class). No training: seconds.
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
TOPS = (10, 20, 30)


def picked_photos(data: Path, flips: int, seed: int) -> list[tuple[str, str]]:
    """(class, file name) of the photos bench/audit.py's flip_labels moves for this seed (the same random draws)."""
    from otter.data import dataset

    rng = np.random.default_rng(seed)
    picks = []
    for cls in dataset.list_classes(data)[:2]:
        images = dataset.list_images(data, cls)
        picks += [(cls, images[int(j)].name) for j in rng.choice(len(images), flips // 2, replace=False)]
    return picks


def main() -> None:
    from cleanlab.rank import get_label_quality_scores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flips", type=int, default=10)
    ap.add_argument("--rows", default=str(RUN2), help="recipe_search rows with out-of-fold probabilities")
    args = ap.parse_args()
    flipped = set(picked_photos(Path(args.data), args.flips, args.seed))
    rows: dict[str, dict] = {}
    for line in Path(args.rows).read_text().splitlines():
        row = json.loads(line)
        rows.setdefault(row["name"], {}).update({(Path(p).parent.name, Path(p).name): v for p, v in row["oof"].items()})
    for name, oof in rows.items():
        keys = sorted(oof)
        classes = sorted({cls for cls, _ in keys})
        probs = np.array([oof[k] for k in keys])
        true = np.array([classes.index(cls) for cls, _ in keys])
        is_flipped = np.array([k in flipped for k in keys])
        given = np.where(is_flipped, 1 - true, true)
        order = np.argsort(get_label_quality_scores(given, probs, method="self_confidence"), kind="stable")
        tops = " / ".join(str(int(is_flipped[order[:k]].sum())) for k in TOPS)
        right = int((probs.argmax(1) == true)[is_flipped].sum())
        accuracy = float((probs.argmax(1) == true).mean())
        print(
            f"{name:>22}  accuracy {accuracy:.3f}  flipped photos predicted right {right} of {is_flipped.sum()}  top 10 / 20 / 30: {tops}"
        )


if __name__ == "__main__":
    main()
