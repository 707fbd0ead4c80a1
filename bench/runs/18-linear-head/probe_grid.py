"""Frozen EfficientNet-Lite0 features + logistic regression, over input sizes, mirror averaging and multi-scale
concatenation, on the same 5 folds as bench/recipe_search.py; and blends with stored fine-tuned out-of-fold runs.

    python bench/runs/18-linear-head/probe_grid.py --data ../shared/otters [--sizes 224 256 288 320 384]
        [--runs bench/runs/15-gpu-grid/recipe_search_run15_gpu_grid.jsonl]

Features: the pooled 1280-d output of the last block, inputs squished to S x S and scaled to [-1, 1] as training
and prediction do (`otter.model.preprocess.preprocess`). "flip": the mean of the image's and its mirror image's features.
C is chosen inside each training fold (LogisticRegressionCV, 5 inner folds), so a validation fold is never seen.
Prints one JSON line per variant; `--save` also writes them to a .jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root


def features(items, size: int, net, mean, std):
    import numpy as np
    import torch

    from otter.data.images import load_image
    from otter.model.preprocess import preprocess

    plain, flipped = [], []
    with torch.inference_mode():
        for i in range(0, len(items), 16):
            x = torch.stack([preprocess(load_image(p), size, mean, std) for p in items[i : i + 16]])
            plain.append(net(x).mean((2, 3)).numpy())
            flipped.append(net(x.flip(-1)).mean((2, 3)).numpy())
    return np.concatenate(plain), np.concatenate(flipped)


def cross_validate(X, y, folds: int, standardize: bool = False):
    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    oof = np.zeros((len(y), 2))
    accs = []
    for tr, va in StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(X, y):
        clf = LogisticRegressionCV(Cs=10, max_iter=5000)
        if standardize:
            clf = make_pipeline(StandardScaler(), clf)
        clf.fit(X[tr], y[tr])
        oof[va] = clf.predict_proba(X[va])
        accs.append(float((oof[va].argmax(1) == y[va]).mean()))
    return oof, accs


def summary(name, oof, y, accs, items, **extra):
    import numpy as np

    nll = float(-np.log(np.clip(oof[np.arange(len(y)), y], 1e-9, 1)).mean())
    wrong = sorted("/".join(Path(items[i]).parts[-2:]) for i in np.flatnonzero(oof.argmax(1) != y))
    row = {"name": name, "acc": float(np.mean(accs)), "acc_sd": float(np.std(accs)), "fold_acc": accs, "nll": nll}
    return row | extra | {"wrong": wrong}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/otters")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 256, 288, 320, 384])
    ap.add_argument("--runs", nargs="*", default=[], help="recipe_search .jsonl files whose out-of-fold rows to blend with")
    ap.add_argument("--save", default="")
    args = ap.parse_args()

    import numpy as np
    import torch

    from otter.model import backbones
    from otter.model.lite0 import EfficientNetLite0
    from otter.model.train import collect_items

    items, labels, classes = collect_items(args.data)
    y = np.array([classes.index(lbl) for lbl in labels])
    net = EfficientNetLite0().eval()
    net.load_state_dict(
        {k: v for k, v in backbones.imagenet_state_dict("efficientnet_lite0").items() if not k.startswith("classifier.")}
    )
    bb = backbones.get("efficientnet_lite0")
    mean, std = torch.tensor(bb.mean).view(3, 1, 1), torch.tensor(bb.std).view(3, 1, 1)

    rows, feats = [], {}
    for size in args.sizes:
        t0 = time.time()
        feats[size] = features(items, size, net, mean, std)
        secs = round(time.time() - t0, 1)
        for flip in (False, True):
            X = (feats[size][0] + feats[size][1]) / 2 if flip else feats[size][0]
            oof, accs = cross_validate(X, y, args.folds)
            rows.append((summary(f"probe {size}px" + (" flip" if flip else ""), oof, y, accs, items, feature_s=secs), oof))
    both = [(feats[s][0] + feats[s][1]) / 2 for s in args.sizes]
    for pair in zip(args.sizes, args.sizes[1:]):
        X = np.concatenate([both[args.sizes.index(s)] for s in pair], 1)
        oof, accs = cross_validate(X, y, args.folds)
        rows.append((summary(f"probe concat {pair[0]}+{pair[1]}px flip", oof, y, accs, items), oof))
    X = np.mean(both, 0)
    oof, accs = cross_validate(X, y, args.folds)
    rows.append((summary(f"probe mean of {'+'.join(map(str, args.sizes))}px flip", oof, y, accs, items), oof))

    # Blends: the mean of a probe's and fine-tuned runs' out-of-fold probabilities (same folds, same file names).
    names = ["/".join(Path(p).parts[-2:]) for p in items]
    fold_of = np.zeros(len(y), int)
    from sklearn.model_selection import StratifiedKFold

    for k, (_, va) in enumerate(StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0).split(items, y)):
        fold_of[va] = k
    for path in args.runs:
        by_recipe: dict[str, np.ndarray] = {}
        for line in open(path):
            r = json.loads(line)
            arr = by_recipe.setdefault(r["name"], np.full((len(y), 2), np.nan))
            for p, probs in r["oof"].items():
                arr[names.index("/".join(Path(p).parts[-2:]))] = probs
        for recipe, ft in by_recipe.items():
            if np.isnan(ft).any():
                continue
            accs = [float((ft[fold_of == k].argmax(1) == y[fold_of == k]).mean()) for k in range(args.folds)]
            rows.append((summary(f"fine-tuned: {recipe}", ft, y, accs, items, source=Path(path).name), ft))
            best = max((r for r in rows if r[0]["name"].startswith("probe")), key=lambda r: r[0]["acc"])
            blend = (ft + best[1]) / 2
            accs = [float((blend[fold_of == k].argmax(1) == y[fold_of == k]).mean()) for k in range(args.folds)]
            rows.append((summary(f"blend: {recipe} + {best[0]['name']}", blend, y, accs, items, source=Path(path).name), blend))
    out = [r for r, _ in rows]
    for r in out:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "wrong"}))
    if args.save:
        Path(args.save).write_text("".join(json.dumps(r) + "\n" for r in out))


if __name__ == "__main__":
    main()
