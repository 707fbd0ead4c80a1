"""A confusion matrix as a clickable table: the table Gradio shows, and which cell a click on it means.
Used by Curate › Suspects (the audit's out-of-fold matrix) and Curate › Review (a model's validation matrix)."""

from __future__ import annotations

import pandas as pd


def confusion_frame(classes: list[str], matrix: list[list[int]] | None, corner: str) -> pd.DataFrame:
    """Rows: true (given) label; columns: prediction. The first column, headed `corner`, names the row."""
    if not classes or not matrix:
        return pd.DataFrame(columns=[corner])
    df = pd.DataFrame(matrix, columns=classes)
    df.insert(0, corner, classes)
    return df


def cell_at(classes: list[str], index) -> tuple[str, str] | None:
    """(true, predicted) for a click at table index [row, col] (the row-name column is not a cell)."""
    if not classes or not isinstance(index, (list, tuple)) or len(index) != 2:
        return None
    row, col = int(index[0]), int(index[1]) - 1
    if not (0 <= row < len(classes) and 0 <= col < len(classes)):
        return None
    return classes[row], classes[col]
