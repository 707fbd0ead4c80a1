""" "Not sure" and calibration on the frozen embeddings: measured in cross-validation, with synthetic unknowns only.

    python bench/runs/29-ood-embeddings/ood_embeddings.py [--data ../shared/otters] [--folds 5] [--unknowns 350]

The rule of bench/ood.py stands: no real photo from outside the data set is used to choose anything. Per fold
(stratified, split seed 0), on `otter.review.embeddings`' vectors of the training photos: a Mahalanobis detector (class
means, one Ledoit-Wolf shared covariance; otter.model.ood.fit_detector) and the audit's logistic-regression head
(unit-length embeddings, C=10), with a temperature fitted on the training folds' own out-of-fold logits. The
threshold accepts 95% of the training photos' out-of-fold scores (an inner 5-fold split), so it is set on
photos the detector did not fit, as cross-validation would. Measured on the held-out fold: the share of
held-out otter photos called "not sure", the share of synthetic unknowns (otter/data/synthetic.py: noise,
gradients, stripes, shapes, fractal clouds, and scrambled or distorted photos of the training folds) called
"not sure", AUROC, accuracy and ECE of the calibrated head.
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]  # the repository root
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def head_logits(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    from otter.model import heads

    clf = LogisticRegression(C=heads.C, max_iter=5000).fit(_unit(x_tr), y_tr)
    return clf.decision_function(_unit(x_te)).reshape(len(x_te), -1) if len(clf.classes_) > 2 else _two(clf, x_te)


def _two(clf, x: np.ndarray) -> np.ndarray:
    d = clf.decision_function(_unit(x))
    return np.stack([-d / 2, d / 2], axis=1)  # softmax of these = the logistic probabilities


def _scores(det, feats: np.ndarray) -> np.ndarray:
    return det.scores(feats, np.zeros((len(feats), 2)))  # Mahalanobis needs no logits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "otters"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--unknowns", type=int, default=350, help="synthetic unknown images")
    args = ap.parse_args()

    from sklearn.model_selection import StratifiedKFold

    from otter.data import synthetic
    from otter.data.images import load_image
    from otter.model import calibrate, ood
    from otter.review import embeddings

    load = os.getloadavg()[0]
    t = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="otter-bench-ood-emb-") as tmp:  # the photos' folder may be read-only
        data = Path(tmp) / "data"
        shutil.copytree(args.data, data, ignore=shutil.ignore_patterns(".*"))
        emb = embeddings.embed_folder(data)
        photos_all = {image: load_image(data / image) for image in emb.images}
    x = emb.vectors.astype(np.float64)
    classes = sorted(set(emb.labels))
    y = np.array([classes.index(lbl) for lbl in emb.labels])
    rows, pooled_probs, pooled_raw, pooled_y = [], [], [], []
    skf = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    for k, (tr, te) in enumerate(skf.split(x, y)):
        photos = [photos_all[emb.images[i]] for i in tr[:60]]
        unknown = synthetic.synthetic_images(args.unknowns, size=224, seed=k, photos=photos)
        ux, _ = embeddings.compute([im for _, im in unknown])
        fam = np.array([f for f, _ in unknown])
        # Out-of-fold scores and logits inside the training folds: threshold and temperature come from them.
        inner_scores, inner_logits = np.zeros(len(tr)), np.zeros((len(tr), len(classes)))
        for itr, iva in StratifiedKFold(5, shuffle=True, random_state=1).split(x[tr], y[tr]):
            det = ood.fit_detector("mahalanobis", len(classes), x[tr][itr], y[tr][itr], x[tr][iva], np.zeros((len(iva), 2)))
            inner_scores[iva] = _scores(det, x[tr][iva])
            inner_logits[iva] = head_logits(x[tr][itr], y[tr][itr], x[tr][iva])
        det = ood.fit_detector("mahalanobis", len(classes), x[tr], y[tr], x[tr], np.zeros((len(tr), 2)))
        det.set_threshold(inner_scores)
        temperature = calibrate.fit_temperature(inner_logits, y[tr])
        logits = head_logits(x[tr], y[tr], x[te])
        known_s, unknown_s = _scores(det, x[te]), _scores(det, ux.astype(np.float64))
        probs, raw = calibrate.softmax(logits, temperature), calibrate.softmax(logits)
        pooled_probs.append(probs)
        pooled_raw.append(raw)
        pooled_y.append(y[te])
        rows.append(
            {
                "fold": k,
                "otters_not_sure": float((known_s > det.threshold).mean()),
                "unknowns_not_sure": float((unknown_s > det.threshold).mean()),
                "per_family": {f: float((unknown_s[fam == f] > det.threshold).mean()) for f in sorted(set(fam))},
                "auroc": ood.auroc(known_s, unknown_s),
                "accuracy": float((probs.argmax(1) == y[te]).mean()),
                "temperature": round(float(temperature), 3),
                "ece": calibrate.ece(probs, y[te]),
                "ece_uncalibrated": calibrate.ece(raw, y[te]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    mean = {key: round(float(np.mean([r[key] for r in rows])), 3) for key in rows[0] if key not in ("fold", "per_family")}
    fams = sorted(rows[0]["per_family"])
    mean["per_family"] = {f: round(float(np.mean([r["per_family"][f] for r in rows])), 3) for f in fams}
    py = np.concatenate(pooled_y)
    mean["ece_pooled"] = round(calibrate.ece(np.concatenate(pooled_probs), py), 3)
    mean["ece_pooled_uncalibrated"] = round(calibrate.ece(np.concatenate(pooled_raw), py), 3)
    mean["ece_noise_floor"] = round(calibrate.ece_noise_floor(np.concatenate(pooled_probs)), 3)
    mean["seconds"] = round(time.monotonic() - t)
    mean["load"] = load
    print(json.dumps(mean))


if __name__ == "__main__":
    main()
