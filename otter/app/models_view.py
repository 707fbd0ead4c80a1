"""The Train tab's Models panel as plain values: the models table, the models trash (what is there, to restore),
and the delete and restore actions as one-line answers. No Gradio here (tested without it).

Nothing here removes a model's files: deleting moves a model to `<models>/.trash/` (`delete_model`), restoring
moves it back (`restore_model`) under its name or another one, never over an existing model."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..data.safepath import UnsafePath, check_name
from ..errors import OtterError, escape_md, one_line
from ..model.default_model import delete_model, model_rows
from ..model.io import ModelError, restore_model, trashed_models

MODEL_COLUMNS = ["name", "accuracy", "size (MB)", "created", "default"]
TRASH_SHOWN = 50  # trashed models offered at once (newest first); the CLI lists them all


def models_table(models_dir: os.PathLike | str) -> pd.DataFrame:
    """One row per model, newest first: name, validation accuracy, size, when it was made, * for the default."""
    rows = [
        {
            "name": r["name"],
            "accuracy": "" if r["accuracy"] is None else f"{r['accuracy']:.1%}",
            "size (MB)": r["size_mb"],
            "created": str(r["created"] or "").replace("T", " ")[:16],
            "default": "*" if r["default"] else "",
        }
        for r in model_rows(models_dir)
    ]
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


def trashed_when(trash_id: str) -> str:
    """'2026-12-03 22:41 UTC' from a trash id (it starts with the UTC time the model went to the trash)."""
    t = trash_id
    return f"{t[:4]}-{t[4:6]}-{t[6:8]} {t[9:11]}:{t[11:13]} UTC" if len(t) >= 13 and t[8] == "T" else t


def trash_choices(models_dir: os.PathLike | str) -> list[tuple[str, str]]:
    """The models trash as (what the picker shows, the trash id), newest first: 'tiny (trashed 2026-12-03 22:41 UTC)'."""
    return [(f"{m['name']} (trashed {trashed_when(m['id'])})", m["id"]) for m in trashed_models(models_dir)[:TRASH_SHOWN]]


def trash_markdown(models_dir: os.PathLike | str) -> str:
    """One line on the models trash: empty, or how many models it holds and how to bring one back."""
    n = len(trashed_models(models_dir))
    if not n:
        return "The models trash is empty. A model trained over an existing name, or deleted, goes there."
    more = f" (the newest {TRASH_SHOWN} are offered; `python -m otter models trash` lists all)" if n > TRASH_SHOWN else ""
    return (
        f"{n} model{'s' if n != 1 else ''} in the models trash{more}: pick one and press **Restore** "
        "(or `python -m otter models restore NAME`)."
    )


def delete_line(models_dir: os.PathLike | str, name: str | None) -> str:
    """Move model `name` to the models trash; one line saying so, or why not."""
    if not name:
        return "Pick a model to delete first."
    try:
        delete_model(models_dir, name)
    except OtterError as ex:
        return f"⚠️ {escape_md(one_line(ex))}"
    return f"Moved model **{escape_md(name)}** to the models trash: restore it below if that was a mistake."


def restore_line(models_dir: os.PathLike | str, trash_id: str | None, as_name: str | None = None) -> str:
    """Bring the trashed model `trash_id` back, under its own name or `as_name`; one line saying so, or why not
    (a model of that name exists: nothing is overwritten, the line says to give another name)."""
    found = next((m for m in trashed_models(models_dir) if m["id"] == trash_id), None)
    if found is None:
        return "Pick a model in the models trash first." if not trash_id else "That model is no longer in the models trash."
    wanted = (as_name or "").strip() or found["name"]
    try:
        name = check_name(wanted, "model name")
    except UnsafePath as ex:
        return f"⚠️ {escape_md(one_line(ex))}"
    if os.path.lexists(Path(models_dir) / name):
        return (
            f"⚠️ Not restored: a model named **{escape_md(name)}** exists. Type another name in *Restore as*, "
            "then press Restore again (or delete that model first)."
        )
    try:
        dest = restore_model(models_dir, trash_id, as_name=name)
    except (ModelError, OSError) as ex:
        return f"⚠️ {escape_md(one_line(ex))}"
    return f"Restored model **{escape_md(dest.name)}**: it is back in the models list (and in Predict's model picker)."
