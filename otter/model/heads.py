"""Linear heads on frozen features: the audit's out-of-fold judge, and training's fitted linear head.

The fitted head (`fit_linear_head`): the logistic regression of the training images' labels on the frozen body's
pooled features (`pooled_features`), copied into the model's last Linear before fine-tuning; `none_last` moves a
trained "none of these" output after the real classes.

Out-of-fold probabilities from linear heads on frozen embeddings: the audit's default judge.

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
from pathlib import Path

import numpy as np

from . import backbones
from .jobs import TrainError, TrainingCancelled
from .loading import NONE_CLASS
from .run import TrainRun, check_cancel

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
    for r in range(repeats):
        for valid in fold_indices(labels, folds, seed + r):
            if cancel is not None and cancel.is_set():
                raise TrainingCancelled("the audit was cancelled")
            train = np.setdiff1d(np.arange(len(y)), valid)
            head = LogisticRegression(C=C, max_iter=5000).fit(x[train], y[train])
            p = np.zeros((len(valid), len(classes)))
            p[:, head.classes_] = head.predict_proba(x[valid])  # a class missing from these folds gets 0
            total[valid] += p
    return total / repeats


# ----------------------------------------------------------------------------- the fitted linear head


def pooled_features(learn, items: list[Path], run: TrainRun | None = None):
    """The frozen network's average-pooled features of `items` (n x d, float64), each the mean of the image's and its
    mirror image's, through the learner's own validation pipeline (resize and normalisation, no augmentation)."""
    import torch

    trunk = backbones.features_and_classifier(learn.model)[0]
    dl = learn.dls.test_dl(items, bs=learn.dls.bs)
    out, n = [], len(dl)
    was_training = learn.model.training
    learn.model.eval()
    try:
        with torch.no_grad():
            for i, (xb,) in enumerate(dl):
                if run is not None:
                    check_cancel(run)
                out.append(((trunk(xb).float() + trunk(xb.flip(-1)).float()) / 2).cpu().numpy())
                if run is not None:
                    run.done_work += run.unit * 2 / 3
                    run.emit("batch", batch=i + 1, batches=n, loss=None)
    finally:
        learn.model.train(was_training)
    return np.concatenate(out).astype(np.float64)


def fit_linear_head(learn, items: list[Path], labels: list[str], run: TrainRun, progress_cb=None) -> None:
    """Set the learner's linear head to the logistic regression of `labels` on the frozen body's pooled features of
    `items` (the training images), with its L2 penalty chosen by cross-validation inside them. This is the "frozen
    head first" stage done exactly: on 196 photos per fold it scored 0.951 in 5-fold CV, against 0.92 for fastai's
    head trained by SGD for 3 epochs (bench/RESULTS.md, run 18). Emits a row with the validation figures."""
    import warnings

    import torch
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    run.stage, run.epoch, run.epochs = "head (logistic regression)", 0, 1  # short: a column of the epochs table
    run.emit("stage")
    x = pooled_features(learn, items, run)
    vocab = list(learn.dls.vocab)
    y = np.array([vocab.index(lbl) for lbl in labels])
    present, counts = np.unique(y, return_counts=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's FutureWarnings about its own coming defaults
        if len(present) < 2:
            raise TrainError("the training images need at least two classes")
        if counts.min() >= 2:
            clf = LogisticRegressionCV(Cs=10, cv=int(min(5, counts.min())), max_iter=5000).fit(x, y)
        else:
            clf = LogisticRegression(max_iter=5000).fit(x, y)
    coef, bias = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # two classes: one score z for the second; softmax([-z/2, z/2]) = sigmoid(z)
        coef, bias = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-bias / 2, bias / 2])
    last = backbones.features_and_classifier(learn.model)[1]
    weight = torch.zeros_like(last.weight)
    b = torch.full_like(last.bias, -20.0)  # an output with no training image is never the answer
    for row, cls in enumerate(clf.classes_):
        weight[int(cls)] = torch.as_tensor(coef[row], dtype=weight.dtype)
        b[int(cls)] = float(bias[row])
    with torch.no_grad():
        last.weight.copy_(weight)
        last.bias.copy_(b)
    row = {"train_loss": None, "valid_loss": None, "accuracy": None}
    if len(learn.dls.valid_ds):
        if progress_cb is not None:
            progress_cb.reporting = False
        try:
            values = learn.validate()
        finally:
            if progress_cb is not None:
                progress_cb.reporting = True
        row |= {"valid_loss": float(values[0]), "accuracy": float(values[1])}
    run.epoch_done(row)
    check_cancel(run)


def none_last(learn) -> None:
    """fastai sorts the vocabulary, so the "none of these" output can be anywhere; move it after the real
    classes (where model.json's extra_outputs and the Predictor expect it) by permuting the last layer's rows.
    Afterwards `learn.dls.vocab` no longer describes the outputs: use the real classes, then "none"."""
    import torch

    vocab = list(learn.dls.vocab)
    if NONE_CLASS not in vocab:
        return
    order = [i for i, c in enumerate(vocab) if c != NONE_CLASS] + [vocab.index(NONE_CLASS)]
    last = backbones.features_and_classifier(learn.model)[1]
    with torch.no_grad():
        last.weight.copy_(last.weight[order].clone())
        if last.bias is not None:
            last.bias.copy_(last.bias[order].clone())
