"""How long jobs say where they are: shared by the command line and the app (plain Python, no torch).

The events themselves are `otter.model.events` (training, and the audit's and embeddings' reports); this module
holds what reads them the same way everywhere.
"""

from __future__ import annotations

import math


def clock(seconds: float | None) -> str:
    """Seconds as m:ss (h:mm:ss from an hour), "–" when unknown: elapsed time and time left, in the CLI and the app."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def parse_ints(text: str | None) -> tuple[int, ...]:
    """ "64, 128" -> (64, 128); blank -> (). ValueError names the text when a part is not a whole number. Sizes and
    epochs as the command line and the Train tab take them."""
    parts = [p for p in (text or "").replace(" ", "").split(",") if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected whole numbers separated by commas, e.g. 64,128 (got {text!r})") from None
