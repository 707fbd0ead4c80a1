"""Score a saved model on a folder-per-class data set."""

from __future__ import annotations

import os

import numpy as np

from .dataset import list_classes, list_images
from .images import InvalidImage
from .metrics import classification_report
from .predict import Predictor


class EvaluateError(ValueError):
    pass


def evaluate(predictor: Predictor, data_dir: os.PathLike | str) -> dict:
    """Accuracy, confusion matrix and per-class figures; images of classes the model does not know are
    counted in "skipped", unreadable images in "errors"."""
    classes = predictor.classes
    known = [c for c in list_classes(data_dir) if c in classes]
    if not known:
        raise EvaluateError(f"{data_dir} has no class folder named like the model's classes ({', '.join(classes)})")
    images = [p for c in known for p in list_images(data_dir, c)]
    results = predictor.predict_batch(images)
    y_true, y_pred, errors = [], [], []
    for path, res in zip(images, results):
        if isinstance(res, InvalidImage):
            errors.append({"image": str(path), "error": str(res)})
            continue
        y_true.append(classes.index(path.parent.name))
        y_pred.append(classes.index(max(res, key=res.get)))
    report = classification_report(np.array(y_true, dtype=int), np.array(y_pred, dtype=int), classes)
    skipped = [c for c in list_classes(data_dir) if c not in classes]
    return report | {"errors": errors, "skipped_classes": skipped, "model": predictor.name}
