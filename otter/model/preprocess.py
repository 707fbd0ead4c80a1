"""The one image-to-tensor step that prediction, Grad-CAM, "not sure" fitting and embeddings share, so that
each sees an image exactly as training's validation pipeline does. Its own module so that `explain` and
`predict` both import it without importing each other."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def preprocess(im: Image.Image, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Exactly what the training pipeline does to a validation image: squish-resize (PIL bilinear), /255, normalise."""
    im = im.resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    return x.sub_(mean).div_(std)
