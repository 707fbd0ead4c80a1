"""Curate › Review: the images the model found hardest (highest loss) in its last training run, filtered by class,
prediction, split or a cell of the validation confusion matrix; relabel or trash them by button or by key
(1-9 relabel, Delete trashes, ← → move the current image), and see where the model looked.

Widgets (`build_review`, typed parts in `ReviewTab`) and their listeners; the logic is in `otter.app.curate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..errors import OtterError, escape_md, one_line
from ..model.io import ModelError, read_meta
from . import curate
from .handlers import AppContext, friendly
from .ui_explain import build_review_explain
from .ui_gallery import GALLERY, ONE_AT_A_TIME, PRIVATE, CurateRefresh, gallery_update, mark_selection, selection_marks_html
from .ui_images import ImagesTab

# Keys for the review: one listener on the page, active while the review gallery is on screen and no text box
# has the focus; it sends the key to the server as a click on the legend (gr.HTML's `trigger`).
REVIEW_KEYS_JS = """
const keys = /^[1-9]$|^(ArrowLeft|ArrowRight|Delete|Backspace)$/;
document.addEventListener('keydown', (e) => {
  if (!element.isConnected || element.offsetParent === null) return;
  const t = e.target;
  if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
  if (e.ctrlKey || e.metaKey || e.altKey || !keys.test(e.key)) return;
  e.preventDefault();
  trigger('click', {key: e.key});
});
"""
NO_CURRENT = "Click an image (or press → ) to make it the current image."


@dataclass
class ReviewTab:
    model: gr.Dropdown
    cls: gr.Dropdown
    pred: gr.Dropdown
    split: gr.Radio
    matrix: gr.Dataframe
    table: gr.Dataframe
    keys: gr.HTML
    current_line: gr.Markdown
    grid: gr.Gallery
    selected: gr.Markdown
    marks: gr.HTML
    target: gr.Dropdown
    move_btn: gr.Button
    delete_btn: gr.Button
    connect_explain: object  # `build_review_explain`'s connect(gallery, shown)
    shown: gr.State  # the gallery's `class/name`s
    picked: gr.State
    current: gr.State  # the current image's index (the keys act on it), or None

    @property
    def filters(self) -> list:
        return [self.model, self.cls, self.split, self.pred]

    @property
    def outputs(self) -> list:
        """What `review_view` fills."""
        first = [self.table, self.grid, self.shown, self.selected, self.cls, self.picked]
        return [*first, self.pred, self.split, self.matrix, self.keys, self.current, self.current_line]


def build_review(ctx: AppContext) -> ReviewTab:
    gr.Markdown(
        "The images the model found hardest (highest loss) in its last training run. "
        "Fix a wrong label or delete a bad image, then train again. Click a cell of the validation "
        "confusion matrix to see exactly those images."
    )
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=[])
        cls = gr.Dropdown(label="True class", choices=["all"], value="all")
        pred = gr.Dropdown(label="Predicted", choices=["all"], value="all", elem_id="review-predicted")
        split = gr.Radio(["all", "valid", "train"], value="all", label="Split", elem_id="review-split")
    matrix = gr.Dataframe(
        interactive=False,
        label="Validation confusion matrix: rows are the true labels, columns the predictions. Click a cell.",
        elem_id="review-confusion",
    )
    table = gr.Dataframe(interactive=False, label="Highest loss first")
    keys = gr.HTML(curate.review_keys_legend([]), js_on_load=REVIEW_KEYS_JS, elem_id="review-keys")
    current_line = gr.Markdown(elem_id="review-current")
    grid = gr.Gallery(label="Images (click to select)", elem_id="review-gallery", **GALLERY)
    selected = gr.Markdown(elem_id="review-selected")
    marks = selection_marks_html("review")
    with gr.Row():
        target = gr.Dropdown(label="Relabel selected as", choices=[], allow_custom_value=True, elem_id="review-target")
        move_btn = gr.Button("Relabel", elem_id="review-relabel")
        delete_btn = gr.Button("Delete selected (to trash)", variant="stop")
    # where the model looked, per clicked image
    connect_explain = build_review_explain(ctx.models, ctx.data_dir, model, wrap=friendly)
    widgets = (model, cls, pred, split, matrix, table, keys, current_line, grid, selected, marks, target, move_btn)
    return ReviewTab(*widgets, delete_btn, connect_explain, gr.State([]), gr.State([]), gr.State(None))


def review_meta(ctx: AppContext, name: str | None) -> dict | None:
    if not name:
        return None
    try:
        return read_meta(ctx.models_dir / name)
    except ModelError:
        return None


def current_view(rels: list[str], index: int | None) -> tuple[int | None, str]:
    """(the current image's index, clamped, or None; the line that names it)."""
    if index is None or not rels:
        return None, NO_CURRENT
    index = max(0, min(index, len(rels) - 1))
    return index, f"Current: **{escape_md(rels[index])}** ({index + 1} of {len(rels)})"


def review_view(ctx: AppContext, tab: ReviewTab, name, c, split, pred="all", index=None) -> dict:
    root = ctx.data_dir
    meta = review_meta(ctx, name)
    df = curate.review_table(root, meta, c, split, pred)
    rels = list(df["image"]) if not df.empty else []
    captions = [f"{r['image'].split('/', 1)[1]}: {r['label']} → {r['predicted']} (loss {r['loss']})" for _, r in df.iterrows()]
    model_classes = (meta or {}).get("classes") or []
    classes = ["all", *model_classes]
    index, line = current_view(rels, index)
    return {
        tab.table: df,
        tab.grid: gallery_update([(str(root / r), cap) for r, cap in zip(rels, captions)], selected_index=index),
        tab.shown: rels,
        tab.selected: curate.selection_line([]),
        tab.cls: gr.Dropdown(choices=classes, value=c if c in classes else "all"),
        tab.picked: [],
        tab.pred: gr.Dropdown(choices=classes, value=pred if pred in classes else "all"),
        tab.split: split,
        tab.matrix: curate.review_confusion(meta),
        tab.keys: curate.review_keys_legend(model_classes),
        tab.current: index,
        tab.current_line: line,
    }


def wire_review(ctx: AppContext, tab: ReviewTab, views: CurateRefresh, images: ImagesTab) -> None:
    """Filters, the confusion matrix, clicks, the buttons and the keys."""
    show = friendly(lambda *args: review_view(ctx, tab, *args))
    tab.model.change(show, tab.filters, tab.outputs, **PRIVATE)
    for comp in (tab.cls, tab.split, tab.pred):  # user changes only: review_view sets them too
        comp.input(show, tab.filters, tab.outputs, **PRIVATE)

    @tab.matrix.select(inputs=tab.filters, outputs=tab.outputs, **PRIVATE)
    @friendly
    def review_cell_view(evt: gr.SelectData, name, c, split, pred):
        """A click on the confusion matrix: that cell's validation images."""
        cell = curate.review_cell(review_meta(ctx, name), evt.index)
        return review_view(ctx, tab, name, cell[0], "valid", cell[1]) if cell else review_view(ctx, tab, name, c, split, pred)

    @tab.grid.select(
        inputs=[tab.shown, tab.picked], outputs=[tab.picked, tab.selected, tab.current, tab.current_line], **ONE_AT_A_TIME
    )
    def review_click(evt: gr.SelectData, rels, sel):
        """A click selects (or unselects) an image for the buttons and makes it the current one for the keys."""
        if evt.index is None or evt.index >= len(rels):
            return {tab.picked: sel, tab.selected: curate.selection_line(sel)}
        sel = curate.toggle(sel, rels[evt.index])
        index, line = current_view(rels, evt.index)
        return {tab.picked: sel, tab.selected: curate.selection_line(sel), tab.current: index, tab.current_line: line}

    tab.connect_explain(tab.grid, tab.shown)
    mark_selection(tab.marks, tab.picked, {"review-gallery": tab.shown})
    wire_review_actions(ctx, tab, views, images)


def wire_review_actions(ctx: AppContext, tab: ReviewTab, views: CurateRefresh, images: ImagesTab) -> None:
    root = ctx.data_dir
    inputs = [images.cls, *tab.filters]
    outputs = views.outputs + tab.outputs

    def review_act(action):
        def run(c, name, rc, split, pred, *args):
            try:
                msg = action(*args)
            except OtterError as ex:
                msg = f"⚠️ {escape_md(one_line(ex))}"
            return views.everything(c, msg) | review_view(ctx, tab, name, rc, split, pred)

        return friendly(run)

    move = review_act(lambda sel, t: curate.move(root, sel, t))
    tab.move_btn.click(move, [*inputs, tab.picked, tab.target], outputs, **PRIVATE)
    delete = review_act(lambda sel: curate.delete(root, sel, reason="deleted in review"))
    tab.delete_btn.click(delete, [*inputs, tab.picked], outputs, **PRIVATE)

    @tab.keys.click(inputs=[*inputs, tab.shown, tab.current], outputs=outputs, **ONE_AT_A_TIME)
    @friendly
    def on_key(evt: gr.EventData, c, name, rc, split, pred, rels, index):
        """A key in the review (REVIEW_KEYS_JS): relabel or trash the current image, or move to another one."""
        try:
            key = evt.key  # what REVIEW_KEYS_JS sent
        except (AttributeError, TypeError):  # no key: a mouse click on the legend, or no event data at all
            key = None
        what = curate.review_key(key, (review_meta(ctx, name) or {}).get("classes") or [])
        if what is None or not rels:
            return gr.skip()
        kind, arg = what
        if kind == "move":  # from no current image, either arrow starts at the first
            index, line = current_view(rels, 0 if index is None else index + int(arg))
            return {tab.grid: gr.Gallery(selected_index=index), tab.current: index, tab.current_line: line}
        if index is None:
            msg = "Click an image (or press → ) first: the keys act on the current image."
            return views.everything(c, msg) | review_view(ctx, tab, name, rc, split, pred)
        image = rels[min(index, len(rels) - 1)]
        if kind == "relabel":
            msg = curate.move(root, [image], arg)
        else:
            msg = curate.delete(root, [image], reason="deleted in review")
        # The image leaves the list; the next one takes its place and becomes the current one.
        return views.everything(c, msg) | review_view(ctx, tab, name, rc, split, pred, index)
