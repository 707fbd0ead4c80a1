"""Score a saved model on a folder-per-class data set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.dataset import list_classes, list_images
from ..data.images import InvalidImage
from ..data.seen import overlap
from ..errors import BadInput
from .calibrate import ece, ece_noise_floor
from .metrics import classification_report
from .predict import Predictor


class EvaluateError(BadInput):
    """Nothing to evaluate: no class folder, or no readable image; the message says which."""


def evaluate(predictor: Predictor, data_dir: os.PathLike | str) -> dict:
    """Accuracy, confusion matrix and per-class figures, calibration error (15 bins) after and before
    temperature scaling (with the ECE a perfectly calibrated model would measure on as many images), and the share
    flagged "not sure"; images of classes the model does not know are counted in "skipped", unreadable images in
    "errors". "seen" (`otter.data.seen.overlap`): how many of the scored images the model trained on and validated on,
    and the accuracy on those it never saw, or {"known": False, "reason"} for a model that does not record them."""
    classes = predictor.classes
    if not Path(data_dir).is_dir():
        raise EvaluateError(f"{data_dir} does not exist or is not a folder; give a folder with one sub-folder per class")
    known = [c for c in list_classes(data_dir) if c in classes]
    if not known:
        raise EvaluateError(f"{data_dir} has no class folder named like the model's classes ({', '.join(classes)})")
    images = [p for c in known for p in list_images(data_dir, c)]
    results = predictor.classify_batch(images)
    y_true, probs, flagged, errors, scored = [], [], [], [], []
    for path, res in zip(images, results):
        if isinstance(res, InvalidImage):
            errors.append({"image": str(path), "error": str(res)})
            continue
        scored.append(path)
        y_true.append(classes.index(path.parent.name))
        probs.append([res["probs"][c] for c in classes])
        flagged.append(not res["known"])
    if not y_true:
        folders = ", ".join(known)
        why = (
            f"none of the {len(errors)} images in {folders} could be read ({errors[0]['error']})"
            if errors
            else f"{folders} hold no images"
        )
        raise EvaluateError(f"nothing to evaluate in {data_dir}: {why}")
    y = np.array(y_true, dtype=int)
    p = np.array(probs, dtype=np.float64).reshape(len(y), len(classes))
    predicted = p.argmax(1)
    report = classification_report(y, predicted, classes)
    # The probabilities are temperature-scaled; p ** T renormalised gives back the raw softmax exactly.
    raw = np.clip(p, 1e-300, 1) ** predictor.temperature
    raw /= np.maximum(raw.sum(1, keepdims=True), 1e-300)
    honesty = {
        "ece": ece(p, y),
        "ece_before": ece(raw, y),
        "ece_noise_floor": ece_noise_floor(p),
        "temperature": predictor.temperature,
        "unknown_rate": float(np.mean(flagged)),
    }
    skipped = [c for c in list_classes(data_dir) if c not in classes]
    seen = overlap(predictor.meta, scored, [bool(ok) for ok in predicted == y])
    return report | honesty | {"seen": seen, "errors": errors, "skipped_classes": skipped, "model": predictor.name}
