"""Curate › Review as plain values: the model's hardest images as a table, the keys' legend and what a key asks
for, and the clickable validation confusion matrix. No Gradio here; `otter.app.curate` offers it to the app."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from ..review.confusion import cell_at, confusion_frame

REVIEW_COLUMNS = ["image", "label", "predicted", "loss", "prob", "split"]


def review_table(
    root: os.PathLike | str,
    meta: dict | None,
    cls: str | None = None,
    split: str | None = None,
    predicted: str | None = None,
) -> pd.DataFrame:
    """The model's reviewed images (model.json "review": every validation image and the hardest training
    images), highest loss first, that are still in the data set under the same class; filtered by true class,
    by split ("train"/"valid") and by predicted class (None or "all": no filter)."""
    rows = [r for r in (meta or {}).get("review") or [] if (Path(root) / r["image"]).is_file()]
    for key, want in (("label", cls), ("split", split), ("predicted", predicted)):
        if want and want != "all":
            rows = [r for r in rows if r[key] == want]
    df = pd.DataFrame(rows, columns=REVIEW_COLUMNS)
    if not df.empty:
        df = df.sort_values("loss", ascending=False, kind="stable").reset_index(drop=True)
        df["loss"] = df["loss"].round(3)
        df["prob"] = df["prob"].round(3)
    return df


REVIEW_CORNER = "true \\ predicted"
DELETE_KEYS = ("Delete", "Backspace")


def review_keys_legend(classes: list[str]) -> str:
    """What each key does in the review, for the page: '1 river · 2 sea · Delete: to the trash · ← →: previous, next'."""
    numbered = " · ".join(f"<kbd>{i}</kbd> {html.escape(c)}" for i, c in enumerate(classes[:9], start=1))
    relabel = f"relabel as {numbered}" if numbered else "relabel: pick a model first"
    return (
        f"<b>Keys</b> (on the current image, outlined): {relabel} · <kbd>Delete</kbd> to the trash · "
        "<kbd>←</kbd> <kbd>→</kbd> previous, next"
    )


def review_key(key: str | None, classes: list[str]) -> tuple[str, str | None] | None:
    """What a key press in the review asks for: ("relabel", class) for 1-9, ("trash", None), ("move", "-1"/"+1")
    for the arrows; None for any other key."""
    if key and key.isdigit() and 1 <= int(key) <= min(9, len(classes)):
        return "relabel", classes[int(key) - 1]
    if key in DELETE_KEYS:
        return "trash", None
    return {"ArrowLeft": ("move", "-1"), "ArrowRight": ("move", "+1")}.get(key or "")


def review_confusion(meta: dict | None) -> pd.DataFrame:
    """The model's validation confusion matrix (model.json "confusion") as a clickable table; empty for a
    model trained without a validation split."""
    meta = meta or {}
    return confusion_frame(meta.get("classes") or [], meta.get("confusion"), REVIEW_CORNER)


def review_cell(meta: dict | None, index) -> tuple[str, str] | None:
    """(true, predicted) for a click on `review_confusion`'s table at [row, col]."""
    return cell_at((meta or {}).get("classes") or [], index) if (meta or {}).get("confusion") else None
