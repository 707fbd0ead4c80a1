"""'Not sure': out-of-distribution scores on a model's penultimate features and logits, with a threshold.

Every score is "higher = more unlike the training classes". Methods:
- "msp": minus the maximum softmax probability (Hendrycks & Gimpel 2017), the baseline;
- "energy": minus T * logsumexp(logits / T) (Liu et al. 2020);
- "mahalanobis": smallest Mahalanobis distance to a class mean, one shared covariance (Lee et al. 2018),
  Ledoit-Wolf shrinkage because a few hundred images cannot estimate a 512 x 512 covariance;
- "knn": distance to the k-th nearest training image on L2-normalised features (Sun et al. 2022);
- "none_class": the margin of an extra "none of these" output, trained on synthetic negatives
  (`otter.data.synthetic`), over the real classes.
The threshold is the score that accepts `ACCEPT` (95%) of the validation images. Arrays (class means,
precision matrix, feature bank) live in `ood.safetensors` beside the model; the rest in model.json["ood"].
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .backbones import features_and_classifier

OOD_TENSORS = "ood.safetensors"
METHODS = ("msp", "energy", "mahalanobis", "knn", "none_class")
ACCEPT = 0.95  # share of validation (in-distribution) images accepted as known
KNN_K = 5


@torch.inference_mode()
def features_and_logits(model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features and logits of one forward pass (the features are the last layer's input)."""
    trunk, last = features_and_classifier(model)
    feats = trunk(batch)
    return feats.float(), last(feats).float()


def _lse(z: np.ndarray) -> np.ndarray:
    return torch.logsumexp(torch.as_tensor(z, dtype=torch.float64), dim=1).numpy()


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class Detector:
    """A fitted OOD score plus its threshold; `known(...)` is True for images that look like training data."""

    method: str
    n_classes: int
    threshold: float = float("inf")
    temperature: float = 1.0
    k: int = KNN_K
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def needs_features(self) -> bool:
        return self.method in ("mahalanobis", "knn")

    def scores(self, feats: np.ndarray | None, logits: np.ndarray) -> np.ndarray:
        logits = np.asarray(logits, dtype=np.float64)
        z = logits[:, : self.n_classes]
        if self.method == "msp":
            p = torch.softmax(torch.as_tensor(z) / self.temperature, dim=1).numpy()
            return -p.max(1)
        if self.method == "energy":
            return -self.temperature * _lse(z / self.temperature)
        if self.method == "none_class":
            if logits.shape[1] <= self.n_classes:
                raise ValueError("the none_class score needs a model with an extra 'none of these' output")
            return logits[:, self.n_classes] - _lse(z)
        feats = np.asarray(feats, dtype=np.float64)
        if self.method == "mahalanobis":
            means, prec = self.tensors["means"].astype(np.float64), self.tensors["precision"].astype(np.float64)
            d = feats[:, None, :] - means[None, :, :]  # (n, classes, dim)
            return np.einsum("ncd,de,nce->nc", d, prec, d).min(1)
        if self.method == "knn":
            bank = self.tensors["bank"].astype(np.float64)
            dist = 1.0 - _l2(feats) @ bank.T  # cosine distance; monotone in Euclidean distance of unit vectors
            k = min(self.k, bank.shape[0])
            return np.sort(dist, axis=1)[:, k - 1]
        raise ValueError(f"unknown OOD method {self.method!r}; choose one of {', '.join(METHODS)}")

    def known(self, feats: np.ndarray | None, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(known?, score) per image."""
        s = self.scores(feats, logits)
        return s <= self.threshold, s

    def set_threshold(self, valid_scores: np.ndarray, accept: float = ACCEPT) -> None:
        """Accept at least `accept` of the validation images (the rest score above the threshold)."""
        valid_scores = np.asarray(valid_scores, dtype=np.float64)
        if len(valid_scores) == 0:
            self.threshold = float("inf")
            return
        self.threshold = float(np.quantile(valid_scores, accept, method="higher"))

    def record(self) -> dict:
        """The JSON part for model.json["ood"]."""
        return {
            "method": self.method,
            "threshold": self.threshold,
            "temperature": self.temperature,
            "k": self.k,
            "n_classes": self.n_classes,
            "accept": ACCEPT,
            "tensors": OOD_TENSORS if self.tensors else None,
        } | self.info

    def tensors_for_saving(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in self.tensors.items()}


def fit_detector(
    method: str,
    n_classes: int,
    train_feats: np.ndarray | None,
    train_y: np.ndarray | None,
    valid_feats: np.ndarray | None,
    valid_logits: np.ndarray,
    temperature: float = 1.0,
    accept: float = ACCEPT,
) -> Detector:
    """Fit `method` (statistics from training features, threshold from validation scores)."""
    if method not in METHODS:
        raise ValueError(f"unknown OOD method {method!r}; choose one of {', '.join(METHODS)}")
    det = Detector(method, n_classes, temperature=temperature if method in ("msp", "energy") else 1.0)
    if method == "mahalanobis":
        from sklearn.covariance import LedoitWolf

        f, y = np.asarray(train_feats, dtype=np.float64), np.asarray(train_y)
        means = np.stack([f[y == c].mean(0) if (y == c).any() else f.mean(0) for c in range(n_classes)])
        lw = LedoitWolf().fit(f - means[y])
        det.tensors = {"means": means, "precision": lw.precision_}
        det.info = {"shrinkage": float(lw.shrinkage_)}
    elif method == "knn":
        det.tensors = {"bank": _l2(np.asarray(train_feats, dtype=np.float64))}
        det.k = min(KNN_K, len(det.tensors["bank"]))
    det.set_threshold(det.scores(valid_feats, valid_logits), accept)
    return det


def detector_from_meta(meta: dict, model_dir: os.PathLike | str | None) -> Detector | None:
    """The detector recorded in a model folder, or None if the model has none."""
    rec = meta.get("ood")
    if not rec or rec.get("method") not in METHODS:
        return None
    tensors = {}
    if rec.get("tensors"):
        from safetensors.numpy import load_file

        if model_dir is None:
            return None
        tensors = load_file(str(Path(model_dir) / OOD_TENSORS))
    return Detector(
        rec["method"],
        int(rec.get("n_classes", len(meta["classes"]))),
        threshold=float(rec["threshold"]),
        temperature=float(rec.get("temperature", 1.0)),
        k=int(rec.get("k", KNN_K)),
        tensors=tensors,
    )


def auroc(known_scores: np.ndarray, unknown_scores: np.ndarray) -> float:
    """P(score of an unknown image > score of a known one), ties counted half: 1 = perfect, 0.5 = chance."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(known_scores)), np.ones(len(unknown_scores))]
    return float(roc_auc_score(y, np.r_[known_scores, unknown_scores]))
