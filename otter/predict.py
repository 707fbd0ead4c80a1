"""Fast prediction with a saved model: decode, resize and normalise in tensors, one forward pass, no DataLoader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .device import pick_device
from .images import ImageInput, InvalidImage, load_image
from .model_io import load_model


def preprocess(im: Image.Image, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Exactly what the training pipeline does to a validation image: squish-resize (PIL bilinear), /255, normalise."""
    im = im.resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    return x.sub_(mean).div_(std)


class Predictor:
    """A loaded model. `predict(image)` -> {class: probability}; safe to call from several threads."""

    def __init__(self, model: torch.nn.Module, meta: dict, path: str | None = None):
        self.meta = meta
        self.path = path
        self.classes: list[str] = list(meta["classes"])
        self.size = int(meta["input_size"])
        norm = meta.get("normalize", {})
        self.mean = torch.tensor(norm.get("mean", (0.485, 0.456, 0.406))).view(3, 1, 1)
        self.std = torch.tensor(norm.get("std", (0.229, 0.224, 0.225))).view(3, 1, 1)
        self.temperature = float(meta.get("calibration", {}).get("temperature", 1.0))
        self.device = pick_device()
        self.model = model.eval().to(self.device)

    @classmethod
    def load(cls, model_dir: os.PathLike | str) -> Predictor:
        model, meta = load_model(model_dir)
        return cls(model, meta, str(model_dir))

    @property
    def name(self) -> str:
        return self.meta.get("name") or Path(self.path or "model").name

    def tensor(self, image: ImageInput) -> torch.Tensor:
        """The normalised (3, size, size) input for one image; raises `InvalidImage`."""
        return preprocess(load_image(image), self.size, self.mean, self.std)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device)).float().cpu()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits[:, : len(self.classes)] / self.temperature, dim=1)

    def _as_dicts(self, probs: torch.Tensor) -> list[dict[str, float]]:
        return [dict(zip(self.classes, map(float, row))) for row in probs.tolist()]

    def predict(self, image: ImageInput) -> dict[str, float]:
        """Class probabilities (summing to 1) for one image."""
        return self._as_dicts(self.probabilities(self.logits(self.tensor(image)[None])))[0]

    def predict_batch(self, images: list[ImageInput], batch_size: int = 32) -> list[dict[str, float] | InvalidImage]:
        """Probabilities for many images, batched; a bad image yields its `InvalidImage` in its place."""
        results: list[dict[str, float] | InvalidImage] = []
        for start in range(0, len(images), batch_size):
            chunk, good, tensors = images[start : start + batch_size], [], []
            out: list[dict[str, float] | InvalidImage] = [None] * len(chunk)  # type: ignore[list-item]
            for i, image in enumerate(chunk):
                try:
                    tensors.append(self.tensor(image))
                    good.append(i)
                except InvalidImage as ex:
                    out[i] = ex
            if tensors:
                for i, probs in zip(good, self._as_dicts(self.probabilities(self.logits(torch.stack(tensors))))):
                    out[i] = probs
            results += out
        return results


def top_label(probs: dict[str, float]) -> tuple[str, float]:
    label = max(probs, key=probs.get)
    return label, probs[label]
