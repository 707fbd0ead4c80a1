"""What a long-running server keeps between requests: loaded models (reloaded when a folder changes) and the one
training job that every browser session sees. Plain Python, no Gradio: the app's handlers are thin calls into this.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..data.images import ImageInput, InvalidImage
from ..data.safepath import check_name, inside
from ..errors import escape_md
from ..model.default_model import default_model_name, keep_default
from ..model.io import ModelError, default_name, list_models
from ..model.predict import Predictor, top_label
from ..model.train import TrainConfig, TrainError, TrainingBusy, collect_items
from ..model.worker import ProcessTrainJob

NO_MODEL = "No model yet: train one in the **Train** tab (or run `python -m otter train`), then come back here."
NOT_SURE_HEADING = "Not sure"  # the page's label for a photo unlike the classes; the reason goes below it
NOT_SURE_REASON = "This photo doesn't look like the classes this model knows ({classes})."
NOT_SURE = "Not sure: this doesn't look like the classes this model knows ({classes})"  # the API's label: one line
NOT_SURE_LABEL = "not sure"  # the label column of a results table


class NoModel(ModelError):
    """There is no trained model to predict with; the message points to the Train tab."""


@dataclass
class Prediction:
    probs: dict[str, float]
    model: str
    accuracy: float | None
    seconds: float
    known: bool = True  # False: the photo looks like none of the classes ("not sure", otter.model.ood)
    classes: list[str] = field(default_factory=list)
    accuracy_name: str = "validation accuracy"  # or "cross-validated accuracy" (the shipped model's, from bench/)

    @property
    def label(self) -> str:
        return top_label(self.probs)[0]

    @property
    def not_sure(self) -> str | None:
        """The "Not sure: ..." sentence for a photo unlike the training classes, else None."""
        return None if self.known else NOT_SURE.format(classes=", ".join(self.classes or self.probs))

    @property
    def not_sure_reason(self) -> str | None:
        """Why the page says "Not sure" (a sentence without those words, shown under the heading), else None."""
        return None if self.known else NOT_SURE_REASON.format(classes=", ".join(self.classes or self.probs))

    def label_data(self) -> dict:
        """What a `gr.Label` shows (already postprocessed): the top class, or "Not sure: ..." with the
        probabilities still listed; also the API's answer, so scripts see the same verdict as the page."""
        ranked = sorted(self.probs.items(), key=lambda kv: kv[1], reverse=True)
        return {
            "label": self.label if self.known else self.not_sure,
            "confidences": [{"label": c, "confidence": p} for c, p in ranked],
        }

    def summary(self) -> str:
        """One line for the UI: which model answered, how good it was on its validation set, how long it took."""
        acc = f", {self.accuracy_name} {self.accuracy:.1%}" if self.accuracy is not None else ""
        return f"Model **{escape_md(self.model)}**{acc} · {self.seconds * 1000:.0f} ms"


def _stamp(path: Path) -> tuple:
    """Changes whenever a model folder is replaced (save_model renames a new folder into place: new inodes) or
    any of its files changes: one directory listing, no file read, since it runs before every prediction."""
    try:
        with os.scandir(path) as entries:
            return tuple(sorted((e.name, e.inode(), e.stat().st_mtime_ns, e.stat().st_size) for e in entries))
    except OSError:
        return ()


class ModelService:
    """The models in a folder, by name, with loaded `Predictor`s cached until their folder changes."""

    def __init__(self, models_dir: os.PathLike | str):
        self.models_dir = Path(models_dir)
        self._cache: dict[str, tuple[tuple[int, ...], Predictor]] = {}
        self._folder: tuple[tuple, list[str], str | None] = ((None,), [], None)  # (stamp, names, default)
        self._lock = threading.Lock()

    def models(self) -> list[dict]:
        """Valid models, newest first (their model.json plus "path")."""
        return list_models(self.models_dir)

    def names(self) -> list[str]:
        return [Path(m["path"]).name for m in self.models()]

    def newest(self) -> str | None:
        names = self.names()
        return names[0] if names else None

    def default(self) -> str | None:
        """The model that answers when none is named (`otter.model.io.default_name`), None when there is none."""
        return self._names_and_default()[1]

    def _names_and_default(self) -> tuple[list[str], str | None]:
        """The valid model names and the default, read again only when the models folder's listing changes
        (a model folder renamed into place, default.json replaced): one directory listing per prediction."""
        stamp = _stamp(self.models_dir)
        with self._lock:
            if self._folder[0] == stamp:
                return self._folder[1], self._folder[2]
        models = list_models(self.models_dir)
        names, default = [Path(m["path"]).name for m in models], default_name(self.models_dir, models)
        with self._lock:
            self._folder = (stamp, names, default)
        return names, default

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) pairs for a model picker: the name with its validation accuracy."""
        out = []
        for m in self.models():
            acc = (m.get("metrics") or {}).get("accuracy")
            name = Path(m["path"]).name
            out.append((f"{name} ({acc:.0%})" if acc is not None else name, name))
        return out

    def predictor(self, name: str | None = None) -> Predictor:
        """The loaded model `name` (the default when None or no longer there); reloaded if its folder changed."""
        names, default = self._names_and_default()
        if not names:
            raise NoModel(NO_MODEL)
        if not name or name not in names:
            name = default
        path = inside(self.models_dir, check_name(name, "model name"), what="model name")
        stamp = _stamp(path)
        with self._lock:
            hit = self._cache.get(name)
            if hit and hit[0] == stamp:
                return hit[1]
        predictor = Predictor.load(path)  # outside the lock: loading takes a moment, others keep predicting
        with self._lock:
            self._cache[name] = (stamp, predictor)
        return predictor

    def predict(self, image: ImageInput, name: str | None = None) -> Prediction:
        """Probabilities for one image; raises `InvalidImage` (bad file) or `NoModel`/`ModelError`."""
        predictor = self.predictor(name)
        t0 = time.perf_counter()
        res = predictor.classify(image)
        meta = predictor.meta
        seconds = time.perf_counter() - t0
        return Prediction(
            res["probs"], predictor.name, _accuracy(meta), seconds, res["known"], predictor.classes, _accuracy_name(meta)
        )

    def predict_files(self, files: list[os.PathLike | str], name: str | None = None) -> pd.DataFrame:
        """One row per file: file, label ("not sure" for a photo unlike the classes), probability (the likeliest
        class's), known (False: "not sure"), each class's probability, or the error for a bad file."""
        predictor = self.predictor(name)
        paths = [Path(f) for f in files]
        results = predictor.classify_batch(paths)
        rows = []
        for path, res in zip(paths, results):
            if isinstance(res, InvalidImage):
                rows.append({"file": path.name, "label": "", "probability": None, "error": res.detail})
                continue
            label, p = res["label"] if res["known"] else NOT_SURE_LABEL, res["confidence"]
            rows.append(
                {"file": path.name, "label": label, "probability": round(p, 4), "known": res["known"], "error": ""}
                | _rounded(res["probs"])
            )
        columns = ["file", "label", "probability", "known", *predictor.classes, "error"]
        return pd.DataFrame(rows, columns=columns)


_services: dict[str, ModelService] = {}
_services_lock = threading.Lock()


def shared_model_service(models_dir: os.PathLike | str) -> ModelService:
    """The one ModelService of this process for a models folder, so every caller shares its loaded models."""
    key = os.path.realpath(models_dir)
    with _services_lock:
        if key not in _services:
            _services[key] = ModelService(models_dir)
        return _services[key]


def _accuracy(meta: dict) -> float | None:
    return (meta.get("metrics") or {}).get("accuracy")


def _accuracy_name(meta: dict) -> str:
    """What the model's accuracy figure is: its validation split's, or the recipe's cross-validation (model.json
    "cv", written by bench/train_default.py for a model trained on everything)."""
    return "cross-validated accuracy" if meta.get("cv") else "validation accuracy"


def _rounded(probs: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in probs.items()}


def write_csv(df: pd.DataFrame, folder: os.PathLike | str, name: str = "predictions.csv") -> Path:
    """Save a results table where the app can offer it for download."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    df.to_csv(path, index=False)
    return path


class TrainService:
    """Starts, cancels and reports the one training job of this server (shared by every browser session). The
    training runs in processes of its own (`otter.model.worker`): a crash there leaves the server serving."""

    def __init__(self, data_dir: os.PathLike | str, models_dir: os.PathLike | str):
        self.data_dir = Path(data_dir)
        self.models_dir = Path(models_dir)

    def job(self) -> ProcessTrainJob | None:
        return ProcessTrainJob.current()

    def running(self) -> bool:
        job = self.job()
        return job is not None and job.running

    def start(self, cfg: TrainConfig, model_name: str) -> ProcessTrainJob:
        """Check what can be checked at once (settings, data set, name, no other job), then train in the background."""
        if self.running():
            raise TrainingBusy("a training job is already running; wait for it to finish or cancel it")
        from ..review.audit import AuditJob  # an audit trains too: one job at a time on the CPU

        audit_job = AuditJob.current()
        if audit_job is not None and audit_job.running:
            raise TrainingBusy("an audit is running (Curate › Suspects); train when it has finished, or cancel it")
        name = check_name(model_name or "", "model name")
        cfg.check()
        collect_items(self.data_dir)  # no data, one class, too few images: say so now, not from the thread
        keep_default(self.models_dir)  # the new model does not take over Predict by being the newest
        return ProcessTrainJob(self.data_dir, self.models_dir / name, cfg).start()

    def cancel(self) -> str:
        job = self.job()
        if job is None or not job.running:
            return "No training is running."
        job.cancel()
        return "Cancelling: training stops after the current batch; the previous model is kept."


__all__ = [
    "ModelService",
    "NoModel",
    "Prediction",
    "TrainService",
    "TrainError",
    "default_model_name",
    "shared_model_service",
    "write_csv",
]
