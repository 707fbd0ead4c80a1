"""Curate › Images: a class's images, paged and selected by clicking; delete or move the selection; "More like
this"; add a class, upload, add from URLs, export the data set.

Widgets (`build_images`, typed parts in `ImagesTab`) and their listeners, each right above its handler; the logic
is in `otter.app.curate` (tested without Gradio). Every action refreshes every Curate view (`CurateViews`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..errors import OtterError, escape_md, one_line
from ..model.jobs import TrainError
from ..review.similar import LookalikeJob
from . import curate, ui_collect
from .handlers import download_progress, friendly, payload_path
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
from .ui_lookalikes import job_line


@dataclass
class ImagesTab:
    cls: gr.Dropdown
    new_class: gr.Textbox
    add_btn: gr.Button
    grid: gr.Gallery
    pager: Pager
    selected: gr.Markdown
    marks: gr.HTML
    select_page: gr.Button
    select_none: gr.Button
    delete_btn: gr.Button
    target: gr.Dropdown
    move_btn: gr.Button
    similar_on: gr.Checkbox
    similar_line: gr.Markdown
    similar_grid: gr.Gallery
    uploads: gr.File
    upload_btn: gr.Button
    urls: gr.Textbox
    url_btn: gr.Button
    export_btn: gr.Button
    export_file: gr.File
    # Server-side lists (read when an event is processed, not when it is sent, so quick clicks all count).
    shown: gr.State  # the page's `class/name`s
    picked: gr.State  # the selection, across pages
    page: gr.State
    neighbours: gr.State  # the class/file names "More like this" lists

    @property
    def page_outputs(self) -> list:
        """What `images_view` fills."""
        return [self.grid, self.shown, self.pager.info, self.page, self.pager.prev, self.pager.next]


def build_images() -> ImagesTab:
    with gr.Row():
        cls = gr.Dropdown(label="Class", choices=[], elem_id="curate-class", scale=2)
        new_class = gr.Textbox(label="New class", placeholder="e.g. sea", scale=2)
        add_btn = gr.Button("Add class", scale=1)
    grid = gr.Gallery(label="Images (click to select, click again to unselect)", elem_id="curate-gallery", **GALLERY)
    pages = pager("curate")
    selected = gr.Markdown(elem_id="curate-selected")
    marks = selection_marks_html("curate")
    with gr.Row():
        select_page = gr.Button("Select this page", size="sm")
        select_none = gr.Button("Clear selection", size="sm")
        delete_btn = gr.Button("Delete selected (to trash)", variant="stop", elem_id="curate-delete")
        target = gr.Dropdown(label="Move selected to", choices=[], allow_custom_value=True)
        move_btn = gr.Button("Move")
    # More like this: the clicked image's nearest neighbours by embedding (otter.review.similar.neighbours). Off by
    # default: a data set without embeddings yet would have them computed (minutes of both cores) at the first click.
    similar_on = gr.Checkbox(
        label="More like this: list the images most like the one clicked", value=False, elem_id="curate-similar-on"
    )
    similar_line = gr.Markdown(curate.more_like_this(None, None)["line"], elem_id="curate-similar-line", visible=False)
    similar_grid = gr.Gallery(
        label="More like this (click to select)",
        elem_id="curate-similar",
        columns=8,
        fit_columns=False,  # a few neighbours stay thumbnails, not two huge cropped images
        height=230,
        allow_preview=False,
        visible=False,
    )
    with gr.Accordion("Upload images into this class", open=False):
        uploads = gr.File(file_count="multiple", file_types=["image"], label="Images", elem_id="curate-uploads")
        upload_btn = gr.Button("Add to class", elem_id="curate-upload")
    with gr.Accordion("Add images from URLs", open=False):
        urls = gr.Textbox(
            label="Image URLs, one a line", lines=4, placeholder="https://example.org/otter.jpg", elem_id="curate-urls"
        )
        url_btn = gr.Button("Add to class", elem_id="curate-url-add")
    with gr.Accordion("Export the data set", open=False):
        gr.Markdown("A zip of every class's images (`images/<class>/…`) and `index.csv` (path,label).")
        export_btn = gr.Button("Export as zip", elem_id="curate-export-button")
        export_file = gr.File(label="Data set", interactive=False, elem_id="curate-export")
    widgets = (cls, new_class, add_btn, grid, pages, selected, marks, select_page, select_none, delete_btn, target)
    more = (move_btn, similar_on, similar_line, similar_grid, uploads, upload_btn, urls, url_btn, export_btn, export_file)
    return ImagesTab(*widgets, *more, gr.State([]), gr.State([]), gr.State(1), gr.State([]))


def images_view(root, tab: ImagesTab, c: str | None, p: int = 1) -> dict:
    """Page `p` of class `c`: one page read from the catalog."""
    rels, p, pages, total = curate.class_page(root, c, p)
    line = f"**{escape_md(c)}**: {curate.page_line(p, pages, total)}" if c else ""
    view = {tab.grid: gallery_update(curate.gallery(root, rels)), tab.shown: rels, tab.pager.info: line, tab.page: p}
    return view | tab.pager.buttons(pages)


def wire_images(ctx, tab: ImagesTab, views: CurateRefresh) -> None:
    """The Images tab's listeners: browsing and selecting, More like this, the actions on the selection, intake."""
    root = ctx.data_dir
    wire_selection(root, tab)
    refresh_similar = wire_more_like_this(root, tab)

    on_delete = views.act(lambda sel: curate.delete(root, sel))
    on_move = views.act(lambda sel, t: curate.move(root, sel, t))
    deleted = tab.delete_btn.click(on_delete, [tab.cls, tab.page, tab.picked], views.outputs, **PRIVATE)
    moved = tab.move_btn.click(on_move, [tab.cls, tab.page, tab.picked, tab.target], views.outputs, **PRIVATE)
    for event in (deleted, moved):  # the images listed as "more like this" may have moved too
        event.then(*refresh_similar, **PRIVATE)
    wire_intake(root, tab, views)


def wire_selection(root, tab: ImagesTab) -> None:
    """Class, pages and the selection (a click toggles an image; the selection survives a change of page)."""

    @tab.cls.change(inputs=[tab.cls], outputs=[*tab.page_outputs, tab.selected, tab.picked], **PRIVATE)
    @friendly
    def on_class(c):
        return images_view(root, tab, c) | {tab.selected: curate.selection_line([]), tab.picked: []}

    for button, step in ((tab.pager.prev, -1), (tab.pager.next, 1)):
        button.click(
            friendly(lambda c, p, step=step: images_view(root, tab, c, p + step)),
            [tab.cls, tab.page],
            tab.page_outputs,
            **PRIVATE,
        )

    def toggle(evt: gr.SelectData, rels, sel):
        if evt.index is not None and evt.index < len(rels):
            sel = curate.toggle(sel, rels[evt.index])
        return sel, curate.selection_line(sel)

    tab.grid.select(toggle, [tab.shown, tab.picked], [tab.picked, tab.selected], **ONE_AT_A_TIME)

    @tab.select_page.click(inputs=[tab.shown, tab.picked], outputs=[tab.picked, tab.selected], **PRIVATE)
    def select_page(rels, sel):
        sel = sel + [r for r in rels if r not in sel]
        return sel, curate.selection_line(sel)

    tab.select_none.click(lambda: ([], curate.selection_line([])), None, [tab.picked, tab.selected], **PRIVATE)
    tab.similar_grid.select(toggle, [tab.neighbours, tab.picked], [tab.picked, tab.selected], **ONE_AT_A_TIME)
    mark_selection(tab.marks, tab.picked, {"curate-gallery": tab.shown, "curate-similar": tab.neighbours})


def wire_more_like_this(root, tab: ImagesTab) -> tuple:
    """With the box ticked, a click on an image also lists its nearest neighbours; with embeddings missing, the
    look-alike job computes them first (progress in the line, polled by the timer), then the list. Returns the
    (fn, inputs, outputs) that refreshes the list after images moved."""
    subject, neighbours = gr.State(None), tab.neighbours  # the image clicked last; the class/file names listed
    timer = gr.Timer(1.0, active=False)
    outputs = [tab.similar_line, tab.similar_grid, neighbours, subject, timer]

    def similar_view(image, start=False):
        view = curate.more_like_this(root, image)
        job = LookalikeJob.current()
        running = job is not None and job.running
        line = view["line"]
        if view["missing"] and start and not running:
            try:
                job, running = LookalikeJob(root).start(), True
            except TrainError as ex:
                line += f" ⚠️ {escape_md(one_line(ex))}"
        if running:
            line += " " + (job_line(job) or "Computing embeddings…")
        elif view["missing"] and job is not None and job.state in ("failed", "cancelled"):
            line += " " + job_line(job)
        return {
            tab.similar_line: gr.Markdown(line, visible=True),
            tab.similar_grid: gr.Gallery(value=view["items"], visible=True),
            neighbours: view["images"],
            subject: image,
            timer: gr.Timer(active=running),
        }

    @tab.grid.select(inputs=[tab.shown, tab.similar_on], outputs=outputs, **ONE_AT_A_TIME)
    @friendly
    def on_click_similar(evt: gr.SelectData, rels, on):
        if evt.index is None or evt.index >= len(rels):
            return gr.skip()  # a lone skip leaves every output as it is
        if not on:  # remember the image, compute nothing
            return {subject: rels[evt.index]}
        return similar_view(rels[evt.index], start=True)

    @tab.similar_on.input(inputs=[tab.similar_on, subject], outputs=outputs, **PRIVATE)
    @friendly
    def on_similar_box(on, image):
        if on:
            return similar_view(image, start=True)
        hidden = {tab.similar_line: gr.Markdown(visible=False), tab.similar_grid: gr.Gallery(value=[], visible=False)}
        return hidden | {neighbours: [], subject: image, timer: gr.Timer(active=False)}

    @timer.tick(inputs=[subject, tab.similar_on], outputs=outputs, **PRIVATE)
    @friendly
    def refresh_similar(image, on):
        return similar_view(image) if on else gr.skip()

    return refresh_similar, [subject, tab.similar_on], outputs


def wire_intake(root, tab: ImagesTab, views: CurateRefresh) -> None:
    """Add a class, upload into it, add images from URLs, export the data set."""

    @tab.add_btn.click(inputs=[tab.new_class], outputs=[*views.outputs, tab.new_class], **PRIVATE)
    @friendly
    def on_add_class(name):
        msg = curate.add_class(root, name or "")
        added = msg.startswith("Added class")
        # The box empties once the class exists, ready for the next; a refused name stays there to be corrected.
        return views.everything(name.strip() if name else None, msg) | {tab.new_class: "" if added else gr.Textbox()}

    @tab.upload_btn.click(inputs=[tab.cls, tab.uploads], outputs=[*views.outputs, tab.uploads], preprocess=False, **PRIVATE)
    @friendly
    def on_upload(c, files):
        try:
            msg = curate.upload(root, c, [payload_path(f) for f in files or []])
        except OtterError as ex:
            msg = f"⚠️ {escape_md(one_line(ex))}"
        # Once filed (or refused), the photos leave the box: a next drop for another class must not re-add them.
        # Without a class nothing was filed, so they stay for the user to pick one.
        return views.everything(c, msg) | ({tab.uploads: None} if c else {})

    @tab.url_btn.click(inputs=[tab.cls, tab.urls], outputs=[*views.outputs, tab.urls], **PRIVATE)
    @friendly
    def on_urls(c, text, progress=gr.Progress()):
        # The app may be public: pasted URLs, like search results, must not reach its own network.
        report = download_progress(progress)
        msg = curate.add_urls(root, c, text, allow_private=ui_collect.ALLOW_PRIVATE_URLS, progress=report)
        return views.everything(c, msg) | ({tab.urls: ""} if msg.startswith("Added") else {})

    @tab.export_btn.click(outputs=[views.status, tab.export_file], **PRIVATE)
    @friendly
    def on_export():
        path, msg = curate.export_view(root)
        return msg, path
