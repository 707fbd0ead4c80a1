"""Classification figures shared by training, evaluation and audits."""

from __future__ import annotations

import numpy as np


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, confusion matrix (rows: true, columns: predicted) and per-class precision/recall/F1."""
    k = len(classes)
    conf = np.zeros((k, k), dtype=int)
    for t, p in zip(y_true, y_pred):
        conf[t, p] += 1
    per_class = {}
    for i, c in enumerate(classes):
        tp, fp, fn = conf[i, i], conf[:, i].sum() - conf[i, i], conf[i, :].sum() - conf[i, i]
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[c] = {"precision": float(prec), "recall": float(rec), "f1": float(f1), "support": int(conf[i].sum())}
    n = int(conf.sum())
    return {
        "accuracy": float(np.trace(conf) / n) if n else None,
        "n": n,
        "classes": classes,
        "confusion": conf.tolist(),
        "per_class": per_class,
    }
