"""Fit a trained model's honest answers: temperature scaling and the 'not sure' detector, from held-out images.

`fit_honesty` runs the model once over the training and validation images (the prediction preprocessing,
so scores match what `Predictor.classify` computes later) and returns what goes into the model folder:
meta["calibration"], meta["ood"] and the arrays for `ood.safetensors`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..data.images import ImageInput, load_image
from . import calibrate, ood
from .preprocess import preprocess

DEFAULT_METHOD = "mahalanobis"  # chosen by bench/ood.py, see bench/RESULTS.md


def features_logits(
    model: torch.nn.Module,
    images: Sequence[ImageInput],
    size: int,
    batch_size: int = 32,
    device=None,
    normalize: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features and logits of `images` (paths or PIL images), preprocessed as for prediction
    (`normalize`: the model's {"mean", "std"}, model.json's; default ImageNet's)."""
    normalize = normalize or {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    mean, std = torch.tensor(normalize["mean"]).view(3, 1, 1), torch.tensor(normalize["std"]).view(3, 1, 1)
    param = next(model.parameters())
    device = device or param.device
    model.eval()
    fs, ls = [], []
    for start in range(0, len(images), batch_size):
        x = torch.stack([preprocess(load_image(im), size, mean, std) for im in images[start : start + batch_size]])
        f, lg = ood.features_and_logits(model, x.to(device, param.dtype))  # the model's own dtype (a bf16 Predictor's too)
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
    fallback: dict | None = None,
    normalize: dict | None = None,
) -> tuple[dict, dict, dict[str, torch.Tensor]]:
    """(meta["calibration"], meta["ood"], tensors for ood.safetensors).

    Temperature and threshold come from the validation images; class means, covariance and the k-NN bank
    from the training images. Without validation images nothing can be fitted honestly from this model
    alone: with `fallback` (measured by cross-validating the same recipe, see `_fit_from_cross_validation`)
    the temperature and threshold are transferred from it; without, both records say why and every image
    counts as known.
    """
    if len(valid_images) == 0:
        if fallback is not None:
            return _fit_from_cross_validation(model, n_classes, size, train_images, train_y, method, fallback, normalize)
        reason = "no validation split (trained on every image); see otter.model.honest.refit_model_folder"
        return {"temperature": 1.0, "skipped": reason}, {"method": None, "skipped": reason}, {}
    v_feats, v_logits = features_logits(model, valid_images, size, normalize=normalize)
    v_y = np.asarray(valid_y)
    cal = calibrate.calibration_record(v_logits[:, :n_classes], v_y)
    t_feats, t_y = None, None
    if method in ("mahalanobis", "knn"):
        t_feats, _ = features_logits(model, train_images, size, normalize=normalize)
        t_y = np.asarray(train_y)
    det = ood.fit_detector(method, n_classes, t_feats, t_y, v_feats, v_logits, temperature=cal["temperature"])
    rec = det.record() | {"n_valid": int(len(v_y)), "fitted_on": "validation split"}
    return cal, rec, {ood.OOD_TENSORS: det.tensors_for_saving()} if det.tensors else {}


def unknown_rate(results: Sequence[dict]) -> float | None:
    """Share of classified images flagged 'not sure'."""
    ok = [r for r in results if isinstance(r, dict)]
    return float(np.mean([not r["known"] for r in ok])) if ok else None


def _fit_from_cross_validation(model, n_classes, size, train_images, train_y, method, fallback: dict, normalize=None):
    """For a model trained on every image. `fallback` = {"temperature", "threshold_over_train_q95", "source"}:
    the temperature fitted on held-out images and how far the 95%-accept threshold on held-out images lay
    above the training images' own 95th-percentile score, both measured by cross-validating the same recipe
    (bench/ood.py). Distance scores only (Mahalanobis, k-NN): they are positive, so a ratio transfers."""
    if method not in ("mahalanobis", "knn"):
        raise ValueError(f"only mahalanobis or knn thresholds can be transferred from cross-validation, not {method!r}")
    t_feats, t_logits = features_logits(model, train_images, size, normalize=normalize)
    t_y = np.asarray(train_y)
    temperature = float(fallback["temperature"])
    cal = {"bins": calibrate.ECE_BINS} | fallback.get("calibration", {})  # e.g. the ECE measured there
    cal |= {"temperature": temperature, "fitted_on": fallback["source"]}
    det = ood.fit_detector(method, n_classes, t_feats, t_y, t_feats, t_logits)
    ratio = float(fallback["threshold_over_train_q95"])
    det.threshold = ratio * float(np.quantile(det.scores(t_feats, t_logits), 0.95))
    rec = det.record() | {"fitted_on": fallback["source"], "threshold_over_train_q95": ratio, "n_valid": 0}
    return cal, rec, {ood.OOD_TENSORS: det.tensors_for_saving()}


def refit_model_folder(model_dir, data_dir, fallback: dict | None = None, method: str = DEFAULT_METHOD) -> dict:
    """Fit calibration and the "not sure" detector of a model trained on every image of `data_dir` (the
    shipped default model), in place and atomically, from the cross-validation `fallback`. Returns the new meta."""
    from pathlib import Path

    from ..data.dataset import list_images
    from .io import load_model, save_model

    model, meta = load_model(model_dir)
    classes = list(meta["classes"])
    items = [p for p in list_images(data_dir) if p.parent.name in classes]
    y = [classes.index(p.parent.name) for p in items]
    cal, rec, extra = fit_honesty(
        model, len(classes), int(meta["input_size"]), items, y, [], [], method, fallback, normalize=meta.get("normalize")
    )
    meta = dict(meta, calibration=cal, ood=rec)
    save_model(model, meta, Path(model_dir), half=meta.get("weights_dtype") == "float16", extra_tensors=extra)
    return meta
