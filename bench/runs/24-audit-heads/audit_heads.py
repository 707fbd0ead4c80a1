"""Which head on frozen embeddings ranks planted label errors best? The audit's candidates, measured in memory.

    python bench/runs/24-audit-heads/audit_heads.py [--data ../shared/otters] [--plantings 10] [--flips 10] [--features /tmp/f.npz]

Embeddings: otter.review.embeddings' network (EfficientNet-Lite0, ImageNet weights, pooled 1280-d, 224 px), of every
photo and of its mirror image, computed once (and kept in --features to rerun quickly). For each planting
(seed 0, 1, ...: the same choice as bench/audit.py's flip_labels, 5 photos of each class moved to the other),
every candidate gives out-of-fold probabilities (5 stratified folds, split seed 0), ranked by cleanlab's
self-confidence (the audit's score) as the audit ranks; we count the flipped photos in the top 10 / 20 / 30.
Only the score ranking: the audit puts cross-class copies first (`reason`), which bench/audit.py measures.
Prints one JSON line per candidate (mean and per planting) and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]  # the repository root
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

TOPS = (10, 20, 30)


def features(items: list[Path], size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(plain, mirrored) embeddings, n x 1280 each, and the seconds it took."""
    import torch

    from otter.data.images import load_image
    from otter.model.backbones import get
    from otter.model.preprocess import preprocess
    from otter.review import embeddings as emb

    bb = get(emb.BACKBONE)
    mean, std = torch.tensor(bb.mean).view(3, 1, 1), torch.tensor(bb.std).view(3, 1, 1)
    net, device = emb.network()
    plain, mirror = [], []
    t = time.monotonic()
    with torch.inference_mode():
        for i in range(0, len(items), 32):
            x = torch.stack([preprocess(load_image(p), size, mean, std) for p in items[i : i + 32]]).to(device)
            x = x.contiguous(memory_format=torch.channels_last)
            plain.append(net(x).float().cpu().numpy())
            mirror.append(net(x.flip(-1)).float().cpu().numpy())
    return np.concatenate(plain), np.concatenate(mirror), time.monotonic() - t


def plant(labels: list[str], classes: list[str], flips: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Given labels with `flips` of them moved to the other class (bench/audit.py's choice for this seed)."""
    rng = np.random.default_rng(seed)
    y = np.array([classes.index(lbl) for lbl in labels])
    picked = []
    for c in range(2):
        idx = np.flatnonzero(y == c)
        picked += [int(idx[j]) for j in rng.choice(len(idx), flips // 2, replace=False)]
    y = y.copy()
    y[picked] = 1 - y[picked]
    return y, picked


def oof(make, X: np.ndarray, y: np.ndarray, folds: int = 5, split_seed: int = 0) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    p = np.zeros((len(y), 2))
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=split_seed).split(X, y):
        p[va] = make().fit(X[tr], y[tr]).predict_proba(X[va])
    return p


def candidates(X: np.ndarray, Xm: np.ndarray) -> dict:
    """name -> function(y) giving out-of-fold probabilities."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    flip = (X + Xm) / 2

    def lr(c, scale="std"):
        pre = StandardScaler() if scale == "std" else Normalizer()
        return lambda: make_pipeline(pre, LogisticRegression(C=c, max_iter=5000))

    def lrcv():
        return make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, max_iter=5000))

    def knn():
        return make_pipeline(Normalizer(), KNeighborsClassifier(n_neighbors=10, weights="distance"))

    out = {}
    for name, feats in (("plain", X), ("flip-mean", flip)):
        for c in (0.01, 0.1, 1.0):
            out[f"LR C={c} standardised, {name}"] = lambda y, f=feats, c=c: oof(lr(c), f, y)
        for c in (1.0, 10.0, 100.0):
            out[f"LR C={c:g} L2-normalised, {name}"] = lambda y, f=feats, c=c: oof(lr(c, "l2"), f, y)
        out[f"LR, C by inner CV, {name}"] = lambda y, f=feats: oof(lrcv, f, y)
        out[f"kNN k=10 cosine, {name}"] = lambda y, f=feats: oof(knn, f, y)
    out["LR C=0.1, TTA: mean of plain and mirror probabilities"] = lambda y: _tta(lr(0.1), X, Xm, y)
    out["LR C=0.1 flip-mean, 5 fold splits averaged"] = lambda y: np.mean(
        [oof(lr(0.1), flip, y, split_seed=s) for s in range(5)], axis=0
    )
    for name, feats in (("plain", X), ("flip-mean", flip)):
        for n in (3, 5):
            out[f"LR C=10 L2-normalised, {name}, {n} fold splits averaged"] = lambda y, f=feats, n=n: np.mean(
                [oof(lr(10.0, "l2"), f, y, split_seed=s) for s in range(n)], axis=0
            )
    out["LR C=10 L2-normalised + kNN, plain, averaged"] = lambda y: (oof(lr(10.0, "l2"), X, y) + oof(knn, X, y)) / 2
    out["LR C=0.1 + kNN, flip-mean, averaged"] = lambda y: (oof(lr(0.1), flip, y) + oof(knn, flip, y)) / 2
    out["LR C=0.1, plain + mirror images as training rows, flip-mean scored"] = lambda y: _augment(lr(0.1), X, Xm, y)
    return out


def _tta(make, X, Xm, y):
    from sklearn.model_selection import StratifiedKFold

    p = np.zeros((len(y), 2))
    for tr, va in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        m = make().fit(np.concatenate([X[tr], Xm[tr]]), np.concatenate([y[tr], y[tr]]))
        p[va] = (m.predict_proba(X[va]) + m.predict_proba(Xm[va])) / 2
    return p


def _augment(make, X, Xm, y):
    from sklearn.model_selection import StratifiedKFold

    p = np.zeros((len(y), 2))
    for tr, va in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        m = make().fit(np.concatenate([X[tr], Xm[tr]]), np.concatenate([y[tr], y[tr]]))
        p[va] = m.predict_proba((X[va] + Xm[va]) / 2)
    return p


def hits(probs: np.ndarray, y: np.ndarray, picked: list[int]) -> dict[str, int]:
    from cleanlab.rank import get_label_quality_scores

    order = np.argsort(get_label_quality_scores(y, probs, method="self_confidence"), kind="stable")
    return {f"top{k}": len(set(order[:k].tolist()) & set(picked)) for k in TOPS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--plantings", type=int, default=10, help="seeds 0..N-1 of the label flips")
    ap.add_argument("--flips", type=int, default=10)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--features", help="an .npz to keep the embeddings in between runs (computed when missing)")
    ap.add_argument("--only", help="run only candidates whose name contains this")
    args = ap.parse_args()

    from otter.model.train import collect_items

    items, labels, classes = collect_items(args.data)
    load = os.getloadavg()[0]
    if args.features and Path(args.features).is_file():
        f = np.load(args.features, allow_pickle=False)
        X, Xm, feat_s = f["plain"], f["mirror"], float(f["seconds"])
    else:
        X, Xm, feat_s = features(items, args.size)
        if args.features:
            np.savez(args.features, plain=X, mirror=Xm, seconds=feat_s)
    print(json.dumps({"images": len(items), "feature_s_plain_and_mirror": round(feat_s, 1), "load": load}), flush=True)
    plantings = [plant(labels, classes, args.flips, s) for s in range(args.plantings)]
    rows = []
    for name, fn in candidates(X, Xm).items():
        if args.only and args.only not in name:
            continue
        t = time.monotonic()
        per = []
        accs = []
        for y, picked in plantings:
            p = fn(y)
            per.append(hits(p, y, picked))
            accs.append(float((p.argmax(1) == y).mean()))
        row = {
            "name": name,
            **{f"top{k}": float(np.mean([h[f"top{k}"] for h in per])) for k in TOPS},
            "top20_min": min(h["top20"] for h in per),
            "all10_in_top30": sum(h["top30"] == args.flips for h in per),
            "ge9_in_top20": sum(h["top20"] >= args.flips - 1 for h in per),
            "oof_acc": round(float(np.mean(accs)), 3),
            "head_s_per_planting": round((time.monotonic() - t) / len(plantings), 2),
            "per_planting": [[h[f"top{k}"] for k in TOPS] for h in per],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{len(items)} photos, {args.flips} flips, {args.plantings} plantings, load average {load:.1f}\n")
    print("| head | top 10 | top 20 | top 30 | ≥ 9 in top 20 | all in top 30 | accuracy | s per audit |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    n = args.plantings
    for r in rows:
        print(
            f"| {r['name']} | {r['top10']:.1f} | {r['top20']:.1f} (min {r['top20_min']}) | {r['top30']:.1f} | "
            f"{r['ge9_in_top20']}/{n} | {r['all10_in_top30']}/{n} | {r['oof_acc']:.3f} | {r['head_s_per_planting']} |"
        )


if __name__ == "__main__":
    main()
