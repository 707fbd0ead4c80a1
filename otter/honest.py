"""Fit a trained model's honest answers: temperature scaling and the 'not sure' detector, from held-out images.

`fit_honesty` runs the model once over the training and validation images (the prediction preprocessing,
so scores match what `Predictor.classify` computes later) and returns what goes into the model folder:
meta["calibration"], meta["ood"] and the arrays for `ood.safetensors`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import calibrate, ood
from .config import IMAGENET_MEAN, IMAGENET_STD
from .images import ImageInput, load_image
from .predict import preprocess

DEFAULT_METHOD = "mahalanobis"  # chosen by bench/ood.py, see bench/RESULTS.md


def features_logits(
    model: torch.nn.Module, images: Sequence[ImageInput], size: int, batch_size: int = 32, device=None
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features and logits of `images` (paths or PIL images), preprocessed as for prediction."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    device = device or next(model.parameters()).device
    model.eval()
    fs, ls = [], []
    for start in range(0, len(images), batch_size):
        x = torch.stack([preprocess(load_image(im), size, mean, std) for im in images[start : start + batch_size]])
        f, lg = ood.features_and_logits(model, x.to(device))
        fs.append(f.cpu().numpy())
        ls.append(lg.cpu().numpy())
    if not fs:
        return np.zeros((0, 0)), np.zeros((0, 0))
    return np.concatenate(fs), np.concatenate(ls)


def fit_honesty(
    model: torch.nn.Module,
    n_classes: int,
    size: int,
    train_images: Sequence[ImageInput],
    train_y: Sequence[int],
    valid_images: Sequence[ImageInput],
    valid_y: Sequence[int],
    method: str = DEFAULT_METHOD,
) -> tuple[dict, dict, dict[str, torch.Tensor]]:
    """(meta["calibration"], meta["ood"], tensors for ood.safetensors).

    Temperature and threshold come from the validation images; class means, covariance and the k-NN bank
    from the training images. Without validation images nothing can be fitted honestly: both records then
    say why, and every image counts as known.
    """
    if len(valid_images) == 0:
        reason = "no validation split (trained on every image); fit on held-out images, e.g. bench/ood.py"
        return {"temperature": 1.0, "skipped": reason}, {"method": None, "skipped": reason}, {}
    v_feats, v_logits = features_logits(model, valid_images, size)
    v_y = np.asarray(valid_y)
    cal = calibrate.calibration_record(v_logits[:, :n_classes], v_y)
    t_feats, t_y = None, None
    if method in ("mahalanobis", "knn"):
        t_feats, _ = features_logits(model, train_images, size)
        t_y = np.asarray(train_y)
    det = ood.fit_detector(method, n_classes, t_feats, t_y, v_feats, v_logits, temperature=cal["temperature"])
    rec = det.record() | {"n_valid": int(len(v_y)), "fitted_on": "validation split"}
    return cal, rec, {ood.OOD_TENSORS: det.tensors_for_saving()} if det.tensors else {}


def unknown_rate(results: Sequence[dict]) -> float | None:
    """Share of classified images flagged 'not sure'."""
    ok = [r for r in results if isinstance(r, dict)]
    return float(np.mean([not r["known"] for r in ok])) if ok else None
