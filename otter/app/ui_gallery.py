"""What the Curate sub-tabs share: paged galleries selected by clicking, their Prev/Next pager, and the outlines of
the selected images. Galleries are paged (`curate.PAGE_SIZE` images) and selected by clicking: the selection is
listed in one line under the gallery instead of a checkbox per file, so a page stays about one screen high
whatever the class size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import gradio as gr

from . import curate

# 8 columns even for a few images (not fewer, wider ones): the height below assumes it.
GALLERY = {"columns": 8, "fit_columns": False, "height": 640, "allow_preview": False}  # 4 rows in view, then scroll
ROW_PX = 165  # one row of 8 thumbnails on a 1280 px wide page, with its gap
ONE_AT_A_TIME = {"trigger_mode": "multiple", "concurrency_limit": 1, "api_visibility": "private"}
PRIVATE = {"api_visibility": "private"}


def gallery_update(items: list, **kwargs) -> gr.Gallery:
    """A gallery update whose height fits a few rows (no empty box under one row), up to GALLERY's 640 px."""
    rows = -(-len(items) // GALLERY["columns"])
    return gr.Gallery(value=items, height=min(GALLERY["height"], 40 + ROW_PX * max(rows, 1)), **kwargs)


@dataclass
class Pager:
    prev: gr.Button
    info: gr.Markdown
    next: gr.Button

    def buttons(self, pages: int) -> dict:
        """Prev and Next, shown only when there is another page."""
        return {self.prev: gr.Button(visible=pages > 1), self.next: gr.Button(visible=pages > 1)}


def pager(prefix: str) -> Pager:
    """◀ Prev · 'page 2 of 3 · 130 images' · Next ▶, with elem_ids `prefix`-prev, -page and -next."""
    with gr.Row(equal_height=True):
        prev_btn = gr.Button("◀ Prev", size="sm", scale=0, min_width=90, elem_id=f"{prefix}-prev")
        info = gr.Markdown(elem_id=f"{prefix}-page")
        next_btn = gr.Button("Next ▶", size="sm", scale=0, min_width=90, elem_id=f"{prefix}-next")
    return Pager(prev_btn, info, next_btn)


def selection_marks_html(prefix: str) -> gr.HTML:
    """Where `mark_selection` writes the outlines of the selected images (a `<style>`; nothing else shows)."""
    return gr.HTML(js_on_load=None, elem_id=f"{prefix}-marks")


def mark_selection(marks: gr.HTML, picked: gr.State, galleries: dict[str, gr.State]) -> None:
    """Keep `marks` outlining every selected image: whenever the selection (`picked`) or what a gallery shows (its
    state in `galleries`, by the gallery's elem_id) changes, whichever event changed it. Gradio's gallery outlines
    only the image clicked last."""
    ids, shown = list(galleries), list(galleries.values())

    def on_change(selection, *lists):
        return curate.selection_marks({i: items or [] for i, items in zip(ids, lists)}, selection or [])

    for state in (picked, *shown):
        state.change(on_change, [picked, *shown], [marks], **PRIVATE)


class CurateRefresh(Protocol):
    """What a Curate sub-tab's actions refresh every view with (`otter.app.ui_curate.CurateViews`)."""

    status: gr.Markdown

    @property
    def outputs(self) -> list: ...

    def everything(self, c: str | None = None, msg: str = "", p: int = 1) -> dict: ...

    def act(self, action: Callable[..., str]) -> Callable: ...
