"""Curate › Trash: the trashed images, newest first, paged and selected by clicking; restore the selection, or
empty the trash for good once the user ticks the confirmation (which names how many files it deletes).

Widgets (`build_trash`, typed parts in `TrashTab`) and their listeners; the logic is in `otter.app.curate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from . import curate
from .handlers import friendly
from .ui_gallery import (
    GALLERY,
    ONE_AT_A_TIME,
    PRIVATE,
    CurateRefresh,
    Pager,
    gallery_update,
    mark_selection,
    pager,
    selection_marks_html,
)
from .ui_images import ImagesTab


@dataclass
class TrashTab:
    grid: gr.Gallery
    pager: Pager
    selected: gr.Markdown
    marks: gr.HTML
    restore_btn: gr.Button
    confirm: gr.Checkbox
    empty_btn: gr.Button
    shown: gr.State  # the page's trash ids
    picked: gr.State  # the selected trash ids
    page: gr.State
    count: gr.State  # the number the confirmation named

    @property
    def page_outputs(self) -> list:
        """What another page of the same trash changes (the selection stays)."""
        return [self.grid, self.shown, self.pager.info, self.page, self.pager.prev, self.pager.next]

    @property
    def outputs(self) -> list:
        """What `trash_view` fills."""
        return [*self.page_outputs, self.selected, self.picked, self.confirm, self.count]


def build_trash() -> TrashTab:
    grid = gr.Gallery(label="Trash (newest first, click to select)", elem_id="trash-gallery", **GALLERY)
    pages = pager("trash")
    selected = gr.Markdown(elem_id="trash-selected")
    marks = selection_marks_html("trash")
    restore_btn = gr.Button("Restore selected", elem_id="trash-restore")
    with gr.Accordion("Empty the trash", open=False):
        confirm = gr.Checkbox(label="The trash is empty", value=False, elem_id="trash-confirm")
        empty_btn = gr.Button("Empty trash (delete for good)", variant="stop", elem_id="trash-empty")
    states = gr.State([]), gr.State([]), gr.State(1), gr.State(0)
    return TrashTab(grid, pages, selected, marks, restore_btn, confirm, empty_btn, *states)


def trash_view(root, tab: TrashTab, p: int = 1, whole: bool = True) -> dict:
    """Page `p` of the trash; `whole`: also a fresh selection and confirmation (False: another page of the same
    trash, which keeps the selection)."""
    on_page, p, pages, total = curate.trash_page(root, p)  # one page read from the catalog
    label = f"Trash: {curate.page_line(p, pages, total)}, newest first" if total else "Trash is empty"
    view = {
        tab.grid: gallery_update(curate.trash_gallery(on_page), label=label),
        tab.shown: [i["id"] for i in on_page],
        tab.pager.info: curate.page_line(p, pages, total) if total else "",
        tab.page: p,
    } | tab.pager.buttons(pages)
    if whole:
        prompt = curate.empty_trash_prompt(total)  # the count the confirmation names is the one checked
        view |= {
            tab.selected: curate.selection_line([], "trashed image"),
            tab.picked: [],
            tab.confirm: gr.Checkbox(label=prompt, value=False, interactive=bool(total)),
            tab.count: total,
        }
    return view


def wire_trash(root, tab: TrashTab, views: CurateRefresh, images: ImagesTab) -> None:
    for button, step in ((tab.pager.prev, -1), (tab.pager.next, 1)):
        # Another page keeps the selection (like the class gallery's): only the page's own outputs change.
        button.click(
            friendly(lambda p, step=step: trash_view(root, tab, p + step, whole=False)), [tab.page], tab.page_outputs, **PRIVATE
        )

    @tab.grid.select(inputs=[tab.shown, tab.picked], outputs=[tab.picked, tab.selected], **ONE_AT_A_TIME)
    def trash_toggle(evt: gr.SelectData, ids, sel):
        if evt.index is not None and evt.index < len(ids):
            sel = curate.toggle(sel, ids[evt.index])
        by_id = {i["id"]: curate.trash_label(i) for i in curate.trash_items(root, sel)}
        return sel, curate.selection_line([by_id[i] for i in sel if i in by_id], "trashed image")

    mark_selection(tab.marks, tab.picked, {"trash-gallery": tab.shown})
    where = [images.cls, images.page]  # the class gallery stays on its class and page
    tab.restore_btn.click(views.act(lambda ids: curate.restore(root, ids)), [*where, tab.picked], views.outputs, **PRIVATE)
    tab.empty_btn.click(
        views.act(lambda ok, n: curate.empty_trash(root, ok, n)), [*where, tab.confirm, tab.count], views.outputs, **PRIVATE
    )
