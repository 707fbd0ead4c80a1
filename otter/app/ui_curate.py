"""The Curate tab: its sub-tabs, each in its own module (Images, Trash, Review, Duplicates, Web search, Suspects),
and the one thing they share: every action refreshes every view (a delete changes the counts, the class gallery
and the trash), which `CurateViews` does.

Handlers are thin calls into `otter.app.curate`, which holds the logic and is tested without Gradio.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from ..data.dataset import list_classes
from ..errors import OtterError, escape_md, one_line
from . import curate
from .handlers import AppContext, friendly
from .ui_audit import build_suspects_tab
from .ui_collect import build_search_panel
from .ui_gallery import PRIVATE
from .ui_images import ImagesTab, build_images, images_view, wire_images
from .ui_lookalikes import build_duplicates_tab
from .ui_review import ReviewTab, build_review, wire_review
from .ui_trash import TrashTab, build_trash, trash_view, wire_trash


class CurateViews:
    """Every view of the Curate tab at once, after an action: the status line, the counts, the class gallery (on its
    page), the selection, the trash and the classes to move to."""

    def __init__(
        self, ctx: AppContext, status: gr.Markdown, counts: gr.Markdown, images: ImagesTab, trash: TrashTab, review: ReviewTab
    ):
        self.root, self.status, self.counts = ctx.data_dir, status, counts
        self.images, self.trash, self.review = images, trash, review

    @property
    def outputs(self) -> list:
        im = self.images
        first = [self.status, self.counts, im.cls, *im.page_outputs, im.selected, im.picked, im.target]
        return [*first, *self.trash.outputs, self.review.target]

    def everything(self, c: str | None = None, msg: str = "", p: int = 1) -> dict:
        classes = list_classes(self.root)
        if c not in classes:
            c = classes[0] if classes else None
        im = self.images
        return (
            {self.status: msg, self.counts: curate.counts_markdown(self.root), im.cls: gr.Dropdown(choices=classes, value=c)}
            | images_view(self.root, im, c, p)
            | {im.selected: curate.selection_line([]), im.picked: [], im.target: gr.Dropdown(choices=classes)}
            | trash_view(self.root, self.trash)
            | {self.review.target: gr.Dropdown(choices=classes)}
        )

    def act(self, action: Callable[..., str]) -> Callable:
        """A handler `(class, page, *args)` that runs a curation action, then refreshes every view so all of them
        show what changed; the class gallery stays on its page (cleaning a large class page by page)."""

        def run(c, p, *args):
            try:
                msg = action(*args)
            except OtterError as ex:
                msg = f"⚠️ {escape_md(one_line(ex))}"
            return self.everything(c, msg, p)

        return friendly(run)


def build_curate_tab(ctx: AppContext) -> dict:
    """Declare the tab inside the current `gr.Tab`; returns "refresh" (the page load's (fn, inputs, outputs)) and
    "review_model" (Review's model dropdown, which Train updates)."""
    status = gr.Markdown(elem_id="curate-status")
    counts = gr.Markdown(elem_id="curate-counts")
    with gr.Tabs():
        with gr.Tab("Images", id="images"):
            images = build_images()
        with gr.Tab("Trash", id="trash"):
            trash = build_trash()
        with gr.Tab("Review", id="review"):
            review = build_review(ctx)
        # Duplicates: look-alike pairs and groups (otter.app.ui_lookalikes)
        dups = build_duplicates_tab(ctx, wrap=friendly)
        with gr.Tab("Web search", id="web-search"):
            web = build_search_panel(ctx.data_dir, wrap=friendly)
        # Suspects: the audit's findings and a clickable confusion matrix (otter.app.ui_audit)
        build_suspects_tab(ctx, wrap=friendly)
        # more Curate sub-tabs go here: `build_xxx_tab(ctx, wrap=friendly)` from their own ui_xxx.py
    views = CurateViews(ctx, status, counts, images, trash, review)
    wire_images(ctx, images, views)
    wire_trash(ctx.data_dir, trash, views, images)
    wire_review(ctx, review, views, images)
    refresh = friendly(views.everything)
    # After a web download, show the class it went into, with its new images.
    web["downloaded"].then(refresh, [web["class"], web["summary"]], views.outputs, **PRIVATE)
    for event in dups["changed"]:  # trashing a look-alike changes the counts, the class gallery and the trash
        event.then(refresh, [images.cls], views.outputs, **PRIVATE)

    def on_load(c):
        names = ctx.models.names()
        return views.everything(c) | {review.model: gr.Dropdown(choices=names, value=names[0] if names else None)}

    return {"refresh": (friendly(on_load), [images.cls], [*views.outputs, review.model]), "review_model": review.model}
