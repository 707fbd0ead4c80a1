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
import time
import warnings
from pathlib import Path

import numpy as np

from . import backbones, distributed
from .jobs import TrainError, TrainingCancelled
from .loading import NONE_CLASS
from .recipes import HEAD_MIRRORS
from .run import TrainRun, check_cancel

C = 10.0  # inverse L2 penalty of the logistic regression (bench/runs/24-audit-heads: 1 and 100 rank worse or the same)
REPEATS = 5  # differently shuffled k-fold splits, averaged
HEAD_STAGE = "head (logistic regression)"  # the fitted head's stage name in the history


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


# ----------------------------------------------------------------------------- the fitted linear head


def pooled_features(learn, items: list[Path], run: TrainRun | None = None, mirror: bool | str = True):
    """The frozen network's average-pooled features of `items` (n x d, float64) through the learner's own validation
    pipeline (resize and normalisation, no augmentation); with `mirror` True (or "mean"), each the mean of the image's
    and its mirror image's; with "both", the image's and its mirror image's side by side (n x 2 x d)."""
    import torch

    trunk = backbones.features_and_classifier(learn.model)[0]
    dl = learn.dls.test_dl(items, bs=learn.dls.bs)
    out, n = [], len(dl)
    mirror = {True: "mean", False: "none"}.get(mirror, mirror)
    was_training = learn.model.training
    learn.model.eval()
    try:
        with torch.no_grad():
            for i, (xb,) in enumerate(dl):
                if run is not None:
                    check_cancel(run)
                f = trunk(xb).float()
                if mirror != "none":
                    g = trunk(xb.flip(-1)).float()
                    f = (f + g) / 2 if mirror == "mean" else torch.stack([f, g], dim=1)
                out.append(f.cpu().numpy())
                if run is not None:
                    run.done_work += run.unit * (1 if mirror == "none" else 2) / 3
                    run.emit("batch", batch=i + 1, batches=n, loss=None)
    finally:
        learn.model.train(was_training)
    return np.concatenate(out).astype(np.float64)


# The fitted head's inverse L2 penalties tried (per image, as scikit-learn's C): the one with the lowest held-out
# log-loss is kept. Bounded above: a large C gives large weights, and large weights turn the small changes of the
# features that fine-tuning makes into large changes of the logits (issue 24).
HEAD_CS = (0.03, 0.1, 0.3, 1.0, 3.0)
HEAD_FOLDS = 3  # cross-validation folds for choosing C (fewer when a class has fewer training images)


def fit_logistic(
    x: np.ndarray, y: np.ndarray, n_classes: int, c: float, smoothing: float = 0.0, init=None, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by L-BFGS in torch (float64): minimises the mean cross-entropy with labels
    smoothed by `smoothing` (the fine-tuning loss) plus |W|^2 / (2 C n). Returns (weights k x d, biases k); `init`
    (such a pair) warm-starts it. Written here rather than with scikit-learn: the same objective as fine-tuning,
    and 10-40x faster than LogisticRegressionCV on 1,280 features (bench/runs/33-public-sets)."""
    import torch

    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    w = torch.zeros(n_classes, xt.shape[1], dtype=torch.float64)
    b = torch.zeros(n_classes, dtype=torch.float64)
    if init is not None:
        w, b = torch.as_tensor(init[0]).clone(), torch.as_tensor(init[1]).clone()
    w.requires_grad_(True)
    b.requires_grad_(True)
    penalty = 1.0 / (2 * c * len(yt))
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w.T + b, yt, label_smoothing=smoothing) + penalty * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def choose_c(
    x: np.ndarray, y: np.ndarray, n_classes: int, smoothing: float = 0.0, seed: int = 0, copies: int = 1
) -> tuple[float, dict]:
    """The C of `HEAD_CS` with the lowest held-out log-loss in a stratified k-fold split of the training images
    (each fold's fits warm-started along the path), and the mean log-loss of each. With `copies` > 1 the rows are
    that many blocks of the same images (e.g. the images, then their mirror images): an image's copies share a fold."""
    from scipy.special import log_softmax

    n = len(y) // copies
    counts = np.bincount(y[:n], minlength=n_classes)
    folds = int(min(HEAD_FOLDS, counts[counts > 0].min()))
    if folds < 2:
        return 1.0, {}
    loss = np.zeros(len(HEAD_CS))
    for held in fold_indices(list(y[:n]), folds, seed):
        valid = np.concatenate([np.asarray(held) + k * n for k in range(copies)])
        train = np.setdiff1d(np.arange(len(y)), valid)
        init = None
        for j, c in enumerate(HEAD_CS):
            init = fit_logistic(x[train], y[train], n_classes, c, smoothing, init, max_iter=50)
            logp = log_softmax(x[valid] @ init[0].T + init[1], axis=1)
            loss[j] += -logp[np.arange(len(valid)), y[valid]].sum() / len(y)
    best = int(np.argmin(loss))
    return float(HEAD_CS[best]), {f"{c:g}": round(float(v), 4) for c, v in zip(HEAD_CS, loss)}


# Mirror images are used (fine-tuning's flips, the head's mirror rows) unless, to heads fitted on the images alone, the
# held-out mirror images' log-loss exceeds the held-out images' by more than MIRROR_LIMIT times, and the images'
# paired differences (mirror minus image) put their mean more than MIRROR_Z standard errors above 0: then they look
# like other classes (mirrored digits, letters). Measured (bench/RESULTS.md, runs 50 and 51): the otters 0.965-1.005
# in each of the 5 folds, Animal-MNIST's silhouettes 1.02, 8 px digits 1.32, where flips cost 0.98 -> 0.95 on test.
# On 5-40 otter photos a class the ratio alone reached 1.09 (80 draws): the z-score keeps chance out of it.
MIRROR_LIMIT = 1.10
MIRROR_Z = 3.0


def mirror_test(x2: np.ndarray, y: np.ndarray, n_classes: int, c: float, smoothing: float = 0.0, seed: int = 0) -> dict | None:
    """Do mirror images look like other classes? Heads fitted on the other folds' images alone (penalty `c`) score
    the held-out images and their mirror images (x2: n x 2 x d, the images' features and their mirror images').
    Returns {"ratio": the mirror images' log-loss over the images', "z": the mean paired difference over its
    standard error, "other_classes": both above their limits}, or None when a class has too few images for two
    folds."""
    from scipy.special import log_softmax

    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(HEAD_FOLDS, counts[counts > 0].min()))
    if folds < 2:
        return None
    loss = np.zeros((len(y), 2))
    for held in fold_indices(list(y), folds, seed):
        train = np.setdiff1d(np.arange(len(y)), held)
        w, b = fit_logistic(x2[train, 0], y[train], n_classes, c, smoothing, max_iter=50)
        for k in (0, 1):
            logp = log_softmax(x2[held, k] @ w.T + b, axis=1)
            loss[held, k] = -logp[np.arange(len(held)), y[held]]
    ratio = float(loss[:, 1].sum() / max(loss[:, 0].sum(), 1e-12))
    d = loss[:, 1] - loss[:, 0]
    z = float(d.mean() / max(d.std(ddof=1) / np.sqrt(len(d)), 1e-12))
    return {"ratio": round(ratio, 3), "z": round(z, 2), "other_classes": ratio > MIRROR_LIMIT and z > MIRROR_Z}


def fit_linear_head(
    learn, items: list[Path], labels: list[str], run: TrainRun, progress_cb=None, mirror: str = "none", test_mirror: bool = False
) -> dict:
    """Set the learner's linear head to the logistic regression of `labels` on the frozen body's pooled features of
    `items` (the training images): the "frozen head first" stage done exactly (5-fold CV on the otters 0.951, against
    0.92 for fastai's head trained by SGD for 3 epochs: bench/RESULTS.md, run 18). Fitted on the loss fine-tuning then
    minimises (label smoothing included), so fine-tuning starts at its optimum for the frozen body, with its penalty
    chosen by held-out log-loss among bounded values (`HEAD_CS`), on the features `mirror` names (HEAD_MIRRORS; the
    default recipe's "both": each image and its mirror image as two rows, the flips fine-tuning also shows; 0.955 in
    the otters' CV against 0.939 on the images alone, run 46). With `test_mirror` (and mirror "both"), the mirror
    images are first tested (`mirror_test`); if they look like other classes the head is fitted on the images
    alone, and the returned "mirror" says so (training then turns fine-tuning's flips off). Emits a row with the
    validation figures; returns what was fitted."""
    import torch

    started = time.monotonic()
    run.stage, run.epoch, run.epochs = HEAD_STAGE, 0, 1  # short: a column of the epochs table
    run.emit("stage")
    ranks = distributed.ranks()  # each process computes its share of the features, rank 0 fits, all get the head
    if mirror not in HEAD_MIRRORS:
        raise TrainError(f"unknown head_mirror {mirror!r}; choose one of {', '.join(HEAD_MIRRORS)}")
    x = ranks.map_sharded(lambda part: pooled_features(learn, part, run, mirror=mirror), items)
    vocab = list(learn.dls.vocab)
    y = np.array([vocab.index(lbl) for lbl in labels])
    if len(np.unique(y)) < 2:
        raise TrainError("the training images need at least two classes")
    smoothing = float(getattr(learn.loss_func, "eps", 0.0) or 0.0)

    def fit():
        xs, ys, used, tested = x, y, mirror, None
        if mirror == "both":
            if test_mirror:
                c_alone, _ = choose_c(x[:, 0], y, len(vocab), smoothing)
                tested = mirror_test(x, y, len(vocab), c_alone, smoothing)
                used = "none" if tested and tested["other_classes"] else "both"
                check_cancel(run)
            # n x 2 x d: the images' rows, then their mirror images' with the same labels; or the images alone
            xs, ys = (np.concatenate([x[:, 0], x[:, 1]]), np.concatenate([y, y])) if used == "both" else (x[:, 0], y)
        c, cv_loss = choose_c(xs, ys, len(vocab), smoothing, copies=2 if used == "both" else 1)
        check_cancel(run)
        return (c, cv_loss, used, tested, *fit_logistic(xs, ys, len(vocab), c, smoothing))

    c, cv_loss, used, tested, coef, bias = ranks.on_main(fit)
    bias[np.bincount(y, minlength=len(vocab)) == 0] = -20.0  # an output with no training image is never the answer
    last = backbones.features_and_classifier(learn.model)[1]
    with torch.no_grad():
        last.weight.copy_(torch.as_tensor(coef, dtype=last.weight.dtype))
        last.bias.copy_(torch.as_tensor(bias, dtype=last.bias.dtype))
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
    run.epoch_done(row, learn.model)
    check_cancel(run)
    if tested:
        tested = {
            "mirror_loss_ratio": tested["ratio"],
            "mirror_z": tested["z"],
            "mirror_limit": MIRROR_LIMIT,
            "mirror_min_z": MIRROR_Z,
        }
    return {
        "C": c,
        "cv_log_loss": cv_loss,
        "mirror": used,  # how the head saw mirror images (HEAD_MIRRORS): "none" where the test found them other shapes
        **(tested or {}),
        "weight_norm": round(float(np.linalg.norm(coef)), 3),
        "seconds": round(time.monotonic() - started, 1),
    }


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
