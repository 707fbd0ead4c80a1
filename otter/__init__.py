"""Otter Classifier: curate a folder-per-class image data set, train a classifier, serve it.

The few names a script needs, importable from `otter` (README "From Python" has an example of each):

    import otter
    result = otter.train("data", otter.TrainConfig(epochs=3), "models/mine")
    predictor = otter.Predictor.load("models/mine")
    predictor.classify("photo.jpg")                       # {"label", "probs", "known", ...}
    otter.evaluate(predictor, "holdout")                   # accuracy, confusion, calibration, seen/unseen
    otter.audit("data").flagged                            # likely label mistakes, most suspect first
    otter.find_duplicates("data")                          # exact copies and look-alikes

Each is imported on first use, so `import otter` stays light (`python -m otter predict` loads no training code).
Long jobs take the same `progress` (a callable given each event) and `cancel` (a threading.Event) options.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "OtterError",
    "Predictor",
    "TrainConfig",
    "audit",
    "default_model",
    "download_images",
    "embed_folder",
    "evaluate",
    "find_duplicates",
    "train",
    "__version__",
]

__version__ = "0.1.0"

# name -> module that defines it; the imports below say the same for type checkers and the layer rules test.
_WHERE = {
    "OtterError": "otter.errors",
    "Predictor": "otter.model.predict",
    "TrainConfig": "otter.model.train",
    "audit": "otter.review.audit",
    "default_model": "otter.model.io",
    "download_images": "otter.data.download",
    "embed_folder": "otter.review.embeddings",
    "evaluate": "otter.model.evaluate",
    "find_duplicates": "otter.review.similar",
    "train": "otter.model.train",
}

if TYPE_CHECKING:
    from .data.download import download_images
    from .errors import OtterError
    from .model.evaluate import evaluate
    from .model.io import default_model
    from .model.predict import Predictor
    from .model.train import TrainConfig, train
    from .review.audit import audit
    from .review.embeddings import embed_folder
    from .review.similar import find_duplicates


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'otter' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
