"""Which model answers by default, and the models folder as a person manages it: list, choose, delete.

The default is recorded in `<models>/default.json` (`otter.model.io.default_name` reads it). A new training never
takes it over by itself: `keep_default` records the current default before a training starts, and the Train tab's
"Use for Predict" (or `python -m otter models default NAME`) changes it. Deleting moves a model folder to
`<models>/.trash/<id>/<name>/`; nothing here removes a model's files.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import date
from pathlib import Path

from ..data.dataset import list_classes
from ..data.safepath import MAX_NAME_LENGTH, check_name
from .io import DEFAULT_FILE, ModelError, default_name, list_models, recorded_default, trash_slot


def set_default(models_dir: os.PathLike | str, name: str) -> str:
    """Record `name` as the default model (it must be a valid model in `models_dir`); returns the name."""
    name = check_name(name, "model name")
    names = [Path(m["path"]).name for m in list_models(models_dir)]
    if name not in names:
        raise ModelError(f"no model {name!r} in {models_dir}; the models are: {', '.join(names) or 'none yet'}")
    _write_default(Path(models_dir), name)
    return name


def _write_default(models_dir: Path, name: str) -> None:
    """`DEFAULT_FILE` replaced atomically (temp file, then `os.replace`): a reader sees the old choice or the new."""
    tmp = models_dir / f".{DEFAULT_FILE}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps({"default": name}))
        os.replace(tmp, models_dir / DEFAULT_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def keep_default(models_dir: os.PathLike | str) -> str | None:
    """Before a training writes into `models_dir`: record the current default unless a valid one is recorded
    already, so the new model does not become the default by being the newest. With no model yet nothing is
    recorded (the new model will be the only one, hence the default). Returns the default."""
    models = list_models(models_dir)
    name = default_name(models_dir, models)
    if name is not None and recorded_default(models_dir) != name:
        _write_default(Path(models_dir), name)
    return name


def model_rows(models_dir: os.PathLike | str) -> list[dict]:
    """The models, newest first: {"name", "accuracy", "size_mb", "created", "default"}, exactly one default
    (when there is any model). "accuracy" is the validation (or cross-validated) accuracy, None if not measured."""
    models = list_models(models_dir)
    default = default_name(models_dir, models)
    rows = []
    for m in models:
        path = Path(m["path"])
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        rows.append(
            {
                "name": path.name,
                "accuracy": (m.get("metrics") or {}).get("accuracy"),
                "size_mb": round(size / 1e6, 1),
                "created": m.get("created"),
                "default": path.name == default,
            }
        )
    return rows


def delete_model(models_dir: os.PathLike | str, name: str) -> Path:
    """Move model `name` to `<models>/.trash/<id>/<name>/` (move it back to restore it); returns where it went.
    When it was the default, the default falls back as `default_name` says and that choice is recorded."""
    models_dir = Path(models_dir)
    name = check_name(name, "model name")
    names = [Path(m["path"]).name for m in list_models(models_dir)]
    if name not in names:
        raise ModelError(f"no model {name!r} in {models_dir}; the models are: {', '.join(names) or 'none yet'}")
    was_default = default_name(models_dir) == name
    dest = trash_slot(models_dir, name)
    os.rename(models_dir / name, dest)
    if was_default:
        (models_dir / DEFAULT_FILE).unlink(missing_ok=True)  # a restored model must not come back as the default
        keep_default(models_dir)
    return dest


def describe_accuracy(meta: dict | None) -> str:
    """How good a model was: "93.8% on its validation split", "81.9% cross-validated" (the shipped model), or not measured."""
    acc = ((meta or {}).get("metrics") or {}).get("accuracy")
    if acc is None:
        return "not measured (no validation split)"
    return f"{acc:.1%} cross-validated" if (meta or {}).get("cv") else f"{acc:.1%} on its validation split"


def comparison(models_dir: os.PathLike | str, name: str) -> str:
    """One line after a training: the new model beside the current default, and which one Predict uses."""
    models = {Path(m["path"]).name: m for m in list_models(models_dir)}
    default = default_name(models_dir, list(models.values()))
    new = f"New model **{name}**: {describe_accuracy(models.get(name))}"
    if default == name:
        return f"{new}. It is the default model: Predict uses it."
    return (
        f"{new}; current default **{default}**: {describe_accuracy(models.get(default))}. "
        f"Predict keeps using **{default}** until you choose *Use for Predict*."
    )


__all__ = ["comparison", "delete_model", "describe_accuracy", "keep_default", "model_rows", "set_default"]


def default_model_name(data_dir: os.PathLike | str, models_dir: os.PathLike | str, today: date | None = None) -> str:
    """A name for a new model that says what it is and replaces nothing: its classes and the date, e.g.
    `river-sea-2026-11-29` (`5-classes-…` for more than three), with `-2`, `-3` added when that is taken."""
    try:
        classes = list_classes(data_dir)
    except (OSError, ValueError):
        classes = []
    what = "-".join(classes) if 0 < len(classes) <= 3 else f"{len(classes)}-classes" if classes else "model"
    base = f"{what[: MAX_NAME_LENGTH - 20]}-{(today or date.today()).isoformat()}"
    name, n = base, 1
    while os.path.lexists(Path(models_dir) / name):
        n += 1
        name = f"{base}-{n}"
    return name
