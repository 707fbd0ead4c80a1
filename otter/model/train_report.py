"""What a finished training records: the trained model on every image (the validation report, the images to review),
temperature scaling and the "not sure" threshold from the validation split, and the model folder with its model.json
(`otter.model.io.save_model`). `otter.model.train` runs it in rank 0 after the fit."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.seen import training_record
from . import backbones, distributed
from .heads import none_last
from .io import save_model
from .loading import NONE_CLASS, ResizedImages
from .metrics import classification_report
from .recipes import TrainConfig
from .run import TrainRun, check_cancel


def predict_items(learn, items: list[Path], labels: list[str]):
    """Probabilities and losses of `items` with validation transforms (no augmentation)."""
    import torch

    if not items:
        return np.zeros((0, len(learn.dls.vocab))), np.zeros(0)
    grad = torch.is_grad_enabled()  # fastai's get_preds can leave it off: restore the caller's setting, whatever it was
    try:
        dl = learn.dls.test_dl([Path(p) for p in items], bs=64)
        probs, _ = learn.get_preds(dl=dl)
    finally:
        torch.set_grad_enabled(grad)
    probs = probs.float().numpy()
    vocab = list(learn.dls.vocab)
    y = np.array([vocab.index(lbl) for lbl in labels])
    losses = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))
    return probs, losses


def _fit_honesty(model, items: list[Path], y: np.ndarray, is_valid: np.ndarray, n_classes: int, cfg: TrainConfig, size: int):
    """Temperature scaling and the "not sure" threshold from the validation split (otter.model.honest)."""
    from .honest import fit_honesty

    train_idx, valid_idx = np.flatnonzero(~is_valid), np.flatnonzero(is_valid)
    return fit_honesty(
        model,
        n_classes,
        size,
        ResizedImages([items[i] for i in train_idx], size),
        y[train_idx],
        ResizedImages([items[i] for i in valid_idx], size),
        y[valid_idx],
        method=cfg.ood_method,
        normalize=backbones.get(cfg.arch).normalize,
    )


def _versions() -> dict:
    import fastai
    import timm
    import torch
    import torchvision

    return {
        "otter": __version__,
        "fastai": fastai.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }


def _evaluate(learn, items: list[Path], labels: list[str], valid_idx: list[int]) -> dict:
    """The trained model on every image, without "none of these": its classes ("vocab"), probabilities, true class
    indices ("y"), which are validation images, the validation split's report, and the images to review."""
    vocab = [c for c in learn.dls.vocab if c != NONE_CLASS]
    none_last(learn)
    probs, _ = predict_items(learn, items, labels)
    probs = probs[:, : len(vocab)] / probs[:, : len(vocab)].sum(1, keepdims=True)  # without "none of these"
    y = np.array([vocab.index(lbl) for lbl in labels])
    losses = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))
    is_valid = np.zeros(len(items), dtype=bool)
    is_valid[valid_idx] = True
    report = (
        classification_report(y[is_valid], probs[is_valid].argmax(1), vocab)
        if is_valid.any()
        else {"accuracy": None, "n": 0, "classes": vocab, "confusion": None, "per_class": None}
    )
    # Every validation image (so the validation confusion matrix can be opened cell by cell) and the
    # 200 hardest training images, highest loss first.
    ranked = np.argsort(-losses, kind="stable")
    keep = set(ranked[is_valid[ranked]]) | set(ranked[~is_valid[ranked]][:200])
    order = [i for i in ranked if i in keep]
    review = [
        {
            "image": f"{items[i].parent.name}/{items[i].name}",
            "label": labels[i],
            "predicted": vocab[int(probs[i].argmax())],
            "loss": float(losses[i]),
            "prob": float(probs[i].max()),
            "split": "valid" if is_valid[i] else "train",
        }
        for i in order
    ]
    return {"vocab": vocab, "probs": probs, "y": y, "is_valid": is_valid, "report": report, "review": review}


def evaluate_and_save(
    learn,
    items,
    labels,
    valid_idx,
    fit_classes,
    cfg: TrainConfig,
    run: TrainRun,
    lr_data,
    precision,
    split,
    data_dir,
    model_dir,
    half,
):
    """Evaluate, calibrate and write the model folder: (folder or None, model.json's dict, validation accuracy)."""
    size = int(run.size)  # the kept state's size: where its validation accuracy was measured
    run.stage = "evaluating"
    run.emit("stage")
    ev = _evaluate(learn, items, labels, valid_idx)
    vocab, y, is_valid, report = ev["vocab"], ev["y"], ev["is_valid"], ev["report"]
    meta = {
        "classes": vocab,
        "extra_outputs": len(fit_classes) - len(vocab),  # 1: a trained "none of these" output after the classes
        "arch": cfg.arch,
        "head": cfg.head,
        "input_size": size,
        "resize_method": "squish",
        "normalize": backbones.get(cfg.arch).normalize,
        "metrics": {k: report[k] for k in ("accuracy", "n", "per_class")},
        "confusion": report["confusion"],
        "train_config": asdict(cfg),
        "recipe": run.recipe,  # the small pictures' recipe, when the pictures' size chose it (else None)
        "train_precision": precision,
        "processes": distributed.ranks().world,  # how many processes trained it (otter.model.distributed)
        **({"distributed": split} if split else {}),  # how the processes divided the images
        "history": run.history,
        "kept": run.kept,  # which stage's state was saved (the best on the validation split)
        "head_fit": run.head_fit,
        "batch_size": run.batch_size,
        "lr_find": lr_data,
        "dataset": {
            "path": str(Path(data_dir).resolve()),
            "counts": {c: labels.count(c) for c in vocab},
            "n_train": int(len(items) - len(valid_idx)),
            "n_valid": int(len(valid_idx)),
        },
        "review": ev["review"],
        "seen": training_record([items[i] for i in np.flatnonzero(~is_valid)], [items[i] for i in valid_idx]),
        "versions": _versions(),
        "train_seconds": round(time.monotonic() - run.start, 1),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    run.stage = "calibrating"
    run.emit("stage")
    meta["calibration"], meta["ood"], extra = _fit_honesty(learn.model, items, y, is_valid, len(vocab), cfg, size)
    check_cancel(run)
    written = None
    if model_dir is not None:
        run.stage = "saving"
        run.emit("stage")
        written = save_model(learn.model, meta, model_dir, half=half, extra_tensors=extra)
    return written, meta, report["accuracy"]
