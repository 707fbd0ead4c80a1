"""Out-of-fold probabilities from linear heads on frozen embeddings: the audit's default judge.

Every image is scored by logistic regressions that never saw it: a stratified k-fold split, one head per
fold, repeated over REPEATS differently shuffled splits and averaged (an ensemble of folds). Inputs are the
embeddings scaled to unit length; C = 10. Chosen by measurement on the sample photos with planted label
flips (bench/runs/24-audit-heads/audit_heads.py, bench/RESULTS.md): of the candidates (logistic regression with other C and
scalings, C picked by inner cross-validation, k-NN, their average, flip test-time augmentation, mirror
images as extra training rows), this ranked the flipped images highest, and in seconds.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from . import distributed
from .jobs import TrainError, TrainingCancelled

C = 10.0  # inverse L2 penalty of the logistic regression (bench/runs/24-audit-heads: 1 and 100 rank worse or the same)
REPEATS = 5  # differently shuffled k-fold splits, averaged


def fold_indices(labels: list[str], folds: int, seed: int = 0) -> list[list[int]]:
    """Validation indices of each fold of a stratified k-fold split (shuffled with `seed`)."""
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise TrainError("need at least 2 folds")
    if folds > len(labels):
        raise TrainError(f"need at least as many images as folds ({len(labels)} images, {folds} folds)")
    # StratifiedKFold warns when a class has fewer images than folds; it still gives every image one fold.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [list(map(int, v)) for _, v in skf.split(np.zeros(len(labels)), labels)]


def out_of_fold(
    vectors: np.ndarray,
    labels: list[str],
    classes: list[str],
    folds: int = 5,
    seed: int = 0,
    repeats: int = REPEATS,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """Probabilities (n x len(classes), columns in `classes` order), each row from heads whose training folds
    left that image out, averaged over `repeats` splits (seeds seed, seed+1, ...)."""
    from sklearn.linear_model import LogisticRegression

    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    y = np.array([classes.index(lbl) for lbl in labels])
    total = np.zeros((len(y), len(classes)))
    splits = [valid for r in range(repeats) for valid in fold_indices(labels, folds, seed + r)]
    ranks = distributed.ranks()  # in a job of several processes, each fits its share of the folds
    for k in ranks.shard(len(splits)):
        valid = splits[k]
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("the audit was cancelled")
        train = np.setdiff1d(np.arange(len(y)), valid)
        head = LogisticRegression(C=C, max_iter=5000).fit(x[train], y[train])
        p = np.zeros((len(valid), len(classes)))
        p[:, head.classes_] = head.predict_proba(x[valid])  # a class missing from these folds gets 0
        total[valid] += p
    return sum(ranks.gather(total)) / repeats
