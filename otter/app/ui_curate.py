"""The Curate tab: Images, Trash and Review (declared here), Duplicates, Web search and Suspects (their own modules).

Each sub-tab has its builder, which declares its widgets and returns them; `build_curate_tab` wires them, since
every action refreshes every view (a delete changes the counts, the class gallery and the trash). Handlers are thin
calls into `otter.app.curate`, which holds the logic and is tested without Gradio.

Galleries are paged (`curate.PAGE_SIZE` images) and selected by clicking: the selection is listed in one line
under the gallery instead of a checkbox per file, so a page stays about one screen high whatever the class size.
"""

from __future__ import annotations

import gradio as gr

from ..data.dataset import list_classes
from ..errors import OtterError, escape_md, one_line
from ..model.io import ModelError, read_meta
from ..model.jobs import TrainError
from ..review.similar import LookalikeJob
from . import curate, ui_collect
from .handlers import AppContext, download_progress, friendly
from .handlers import payload_path as _path
from .ui_audit import build_suspects_tab
from .ui_collect import build_search_panel
from .ui_explain import build_review_explain
from .ui_lookalikes import build_duplicates_tab, job_line

# 8 columns even for a few images (not fewer, wider ones): the height below assumes it.
GALLERY = {"columns": 8, "fit_columns": False, "height": 640, "allow_preview": False}  # 4 rows in view, then scroll
ROW_PX = 165  # one row of 8 thumbnails on a 1280 px wide page, with its gap


def _gallery(items: list, **kwargs) -> gr.Gallery:
    """A gallery update whose height fits a few rows (no empty box under one row), up to GALLERY's 640 px."""
    rows = -(-len(items) // GALLERY["columns"])
    return gr.Gallery(value=items, height=min(GALLERY["height"], 40 + ROW_PX * max(rows, 1)), **kwargs)


def _pager_buttons(parts: dict, pages: int) -> dict:
    """The pager's buttons of a sub-tab's `parts` (see `_pager`), shown only when there is another page."""
    return {parts["prev_btn"]: gr.Button(visible=pages > 1), parts["next_btn"]: gr.Button(visible=pages > 1)}


ONE_AT_A_TIME = {"trigger_mode": "multiple", "concurrency_limit": 1, "api_visibility": "private"}
PRIVATE = {"api_visibility": "private"}

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


def _pager(prefix: str):
    with gr.Row(equal_height=True):
        prev_btn = gr.Button("◀ Prev", size="sm", scale=0, min_width=90, elem_id=f"{prefix}-prev")
        info = gr.Markdown(elem_id=f"{prefix}-page")
        next_btn = gr.Button("Next ▶", size="sm", scale=0, min_width=90, elem_id=f"{prefix}-next")
    return prev_btn, info, next_btn


def build_images() -> dict:
    with gr.Row():
        cls = gr.Dropdown(label="Class", choices=[], elem_id="curate-class", scale=2)
        new_class = gr.Textbox(label="New class", placeholder="e.g. sea", scale=2)
        add_btn = gr.Button("Add class", scale=1)
    grid = gr.Gallery(label="Images (click to select, click again to unselect)", elem_id="curate-gallery", **GALLERY)
    prev_btn, page_info, next_btn = _pager("curate")
    selected = gr.Markdown(elem_id="curate-selected")
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
        height=210,
        allow_preview=False,
        visible=False,
    )
    with gr.Accordion("Upload images into this class", open=False):
        uploads = gr.File(file_count="multiple", file_types=["image"], label="Images", elem_id="curate-uploads")
        upload_btn = gr.Button("Add to class", elem_id="curate-upload")
    with gr.Accordion("Add images from URLs", open=False):
        urls = gr.Textbox(
            label="Image URLs, one a line",
            lines=4,
            placeholder="https://example.org/otter.jpg",
            elem_id="curate-urls",
        )
        url_btn = gr.Button("Add to class", elem_id="curate-url-add")
    with gr.Accordion("Export the data set", open=False):
        gr.Markdown("A zip of every class's images (`images/<class>/…`) and `index.csv` (path,label).")
        export_btn = gr.Button("Export as zip", elem_id="curate-export-button")
        export_file = gr.File(label="Data set", interactive=False, elem_id="curate-export")
    return locals()


def build_trash() -> dict:
    grid = gr.Gallery(label="Trash (newest first, click to select)", elem_id="trash-gallery", **GALLERY)
    prev_btn, page_info, next_btn = _pager("trash")
    selected = gr.Markdown(elem_id="trash-selected")
    restore_btn = gr.Button("Restore selected", elem_id="trash-restore")
    with gr.Accordion("Empty the trash", open=False):
        confirm = gr.Checkbox(label="The trash is empty", value=False, elem_id="trash-confirm")
        empty_btn = gr.Button("Empty trash (delete for good)", variant="stop", elem_id="trash-empty")
    return locals()


def build_review(ctx: AppContext) -> dict:
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
    with gr.Row():
        target = gr.Dropdown(label="Relabel selected as", choices=[], allow_custom_value=True, elem_id="review-target")
        move_btn = gr.Button("Relabel", elem_id="review-relabel")
        delete_btn = gr.Button("Delete selected (to trash)", variant="stop")
    # where the model looked, per clicked image
    connect_explain = build_review_explain(ctx.models, ctx.data_dir, model, wrap=friendly)
    return locals()


def build_curate_tab(ctx: AppContext) -> dict:
    root = ctx.data_dir
    status = gr.Markdown(elem_id="curate-status")
    counts = gr.Markdown(elem_id="curate-counts")
    with gr.Tabs():
        with gr.Tab("Images", id="images"):
            im = build_images()
        with gr.Tab("Trash", id="trash"):
            tr = build_trash()
        with gr.Tab("Review", id="review"):
            rv = build_review(ctx)
        # Duplicates: look-alike pairs and groups (otter.app.ui_lookalikes)
        dups = build_duplicates_tab(ctx, wrap=friendly)
        with gr.Tab("Web search", id="web-search"):
            web = build_search_panel(ctx.data_dir, wrap=friendly)
        # Suspects: the audit's findings and a clickable confusion matrix (otter.app.ui_audit)
        build_suspects_tab(ctx, wrap=friendly)
        # more Curate sub-tabs go here: `build_xxx_tab(ctx, wrap=friendly)` from their own ui_xxx.py

    # Server-side lists (read when an event is processed, not when it is sent, so quick clicks all count).
    shown, picked, page = gr.State([]), gr.State([]), gr.State(1)  # the page's `class/name`s, the selection, the page
    trash_shown, trash_picked, trash_page = gr.State([]), gr.State([]), gr.State(1)  # trash ids
    trash_count = gr.State(0)  # the number the confirmation named

    # ---- refreshing views
    def class_update(value=None):
        classes = list_classes(root)
        if value not in classes:
            value = classes[0] if classes else None
        return value, gr.Dropdown(choices=classes, value=value)

    def images_view(c, p=1):
        rels, p, pages, total = curate.class_page(root, c, p)  # one page read from the catalog
        line = f"**{escape_md(c)}**: {curate.page_line(p, pages, total)}" if c else ""
        view = {im["grid"]: _gallery(curate.gallery(root, rels)), shown: rels, im["page_info"]: line, page: p}
        return view | _pager_buttons(im, pages)

    def trash_labels(ids):
        by_id = {i["id"]: curate.trash_label(i) for i in curate.trash_items(root, ids)}
        return [by_id[i] for i in ids if i in by_id]

    def trash_view(p=1, whole=True):
        """Page `p` of the trash; `whole`: also a fresh selection and confirmation (False: another page of the same
        trash, which keeps the selection)."""
        on_page, p, pages, total = curate.trash_page(root, p)  # one page read from the catalog
        label = f"Trash: {curate.page_line(p, pages, total)}, newest first" if total else "Trash is empty"
        view = {
            tr["grid"]: _gallery(curate.trash_gallery(on_page), label=label),
            trash_shown: [i["id"] for i in on_page],
            tr["page_info"]: curate.page_line(p, pages, total) if total else "",
            trash_page: p,
        } | _pager_buttons(tr, pages)
        if whole:
            prompt = curate.empty_trash_prompt(total)  # the count the confirmation names is the one checked
            view |= {
                tr["selected"]: curate.selection_line([], "trashed image"),
                trash_picked: [],
                tr["confirm"]: gr.Checkbox(label=prompt, value=False, interactive=bool(total)),
                trash_count: total,
            }
        return view

    trash_page_outputs = [tr["grid"], trash_shown, tr["page_info"], trash_page, tr["prev_btn"], tr["next_btn"]]
    trash_outputs = [*trash_page_outputs, tr["selected"], trash_picked, tr["confirm"], trash_count]

    def everything(c=None, msg="", p=1):
        c, c_upd = class_update(c)
        classes = list_classes(root)
        return (
            {status: msg, counts: curate.counts_markdown(root), im["cls"]: c_upd}
            | images_view(c, p)
            | {im["selected"]: curate.selection_line([]), picked: [], im["target"]: gr.Dropdown(choices=classes)}
            | trash_view()
            | {rv["target"]: gr.Dropdown(choices=classes)}
        )

    image_outputs = [im["grid"], shown, im["page_info"], page, im["prev_btn"], im["next_btn"]]
    all_outputs = [status, counts, im["cls"], *image_outputs, im["selected"], picked, im["target"], *trash_outputs]
    all_outputs.append(rv["target"])
    # After a web download, show the class it went into, with its new images.
    web["downloaded"].then(friendly(everything), [web["class"], web["summary"]], all_outputs, **PRIVATE)

    def act(action):
        """Run a curation action, then refresh every view so all of them show what changed; the class gallery
        stays on its page (cleaning a large class page by page)."""

        def run(c, p, *args):
            try:
                msg = action(*args)
            except OtterError as ex:
                msg = f"⚠️ {escape_md(one_line(ex))}"
            return everything(c, msg, p)

        return friendly(run)

    # ---- images
    def on_class(c):
        return images_view(c) | {im["selected"]: curate.selection_line([]), picked: []}

    im["cls"].change(friendly(on_class), [im["cls"]], [*image_outputs, im["selected"], picked], **PRIVATE)
    for button, step in ((im["prev_btn"], -1), (im["next_btn"], 1)):
        button.click(friendly(lambda c, p, step=step: images_view(c, p + step)), [im["cls"], page], image_outputs, **PRIVATE)

    def toggle(evt: gr.SelectData, rels, sel):
        if evt.index is not None and evt.index < len(rels):
            sel = curate.toggle(sel, rels[evt.index])
        return sel, curate.selection_line(sel)

    im["grid"].select(toggle, [shown, picked], [picked, im["selected"]], **ONE_AT_A_TIME)

    def select_page(rels, sel):
        sel = sel + [r for r in rels if r not in sel]
        return sel, curate.selection_line(sel)

    # More like this: with the box ticked, a click on an image also lists its nearest neighbours; with embeddings
    # missing, the look-alike job computes them first (progress in the line, polled by the timer), then the list.
    subject, neighbours = gr.State(None), gr.State([])  # the image clicked last; the class/file names listed
    similar_timer = gr.Timer(1.0, active=False)
    similar_outputs = [im["similar_line"], im["similar_grid"], neighbours, subject, similar_timer]

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
            im["similar_line"]: gr.Markdown(line, visible=True),
            im["similar_grid"]: gr.Gallery(value=view["items"], visible=True),
            neighbours: view["images"],
            subject: image,
            similar_timer: gr.Timer(active=running),
        }

    def on_click_similar(evt: gr.SelectData, rels, on):
        if evt.index is None or evt.index >= len(rels):
            return gr.skip()  # a lone skip leaves every output as it is
        if not on:  # remember the image, compute nothing
            return {subject: rels[evt.index]}
        return similar_view(rels[evt.index], start=True)

    def on_similar_box(on, image):
        if on:
            return similar_view(image, start=True)
        return {
            im["similar_line"]: gr.Markdown(visible=False),
            im["similar_grid"]: gr.Gallery(value=[], visible=False),
            neighbours: [],
            subject: image,
            similar_timer: gr.Timer(active=False),
        }

    def refresh_similar(image, on):
        return similar_view(image) if on else gr.skip()

    im["grid"].select(friendly(on_click_similar), [shown, im["similar_on"]], similar_outputs, **ONE_AT_A_TIME)
    im["similar_on"].input(friendly(on_similar_box), [im["similar_on"], subject], similar_outputs, **PRIVATE)
    similar_timer.tick(friendly(refresh_similar), [subject, im["similar_on"]], similar_outputs, **PRIVATE)
    im["similar_grid"].select(toggle, [neighbours, picked], [picked, im["selected"]], **ONE_AT_A_TIME)

    im["select_page"].click(select_page, [shown, picked], [picked, im["selected"]], **PRIVATE)
    im["select_none"].click(lambda: ([], curate.selection_line([])), None, [picked, im["selected"]], **PRIVATE)
    im["delete_btn"].click(act(lambda sel: curate.delete(root, sel)), [im["cls"], page, picked], all_outputs, **PRIVATE).then(
        friendly(refresh_similar), [subject, im["similar_on"]], similar_outputs, **PRIVATE
    )
    im["move_btn"].click(
        act(lambda sel, t: curate.move(root, sel, t)), [im["cls"], page, picked, im["target"]], all_outputs, **PRIVATE
    ).then(friendly(refresh_similar), [subject, im["similar_on"]], similar_outputs, **PRIVATE)

    def on_add_class(name):
        msg = curate.add_class(root, name or "")
        added = msg.startswith("Added class")
        # The box empties once the class exists, ready for the next; a refused name stays there to be corrected.
        return everything(name.strip() if name else None, msg) | {im["new_class"]: "" if added else gr.Textbox()}

    im["add_btn"].click(friendly(on_add_class), [im["new_class"]], [*all_outputs, im["new_class"]], **PRIVATE)

    def on_upload(c, files):
        try:
            msg = curate.upload(root, c, [_path(f) for f in files or []])
        except OtterError as ex:
            msg = f"⚠️ {escape_md(one_line(ex))}"
        # Once filed (or refused), the photos leave the box: a next drop for another class must not re-add them.
        # Without a class nothing was filed, so they stay for the user to pick one.
        return everything(c, msg) | ({im["uploads"]: None} if c else {})

    im["upload_btn"].click(
        friendly(on_upload), [im["cls"], im["uploads"]], [*all_outputs, im["uploads"]], preprocess=False, **PRIVATE
    )

    def on_urls(c, text, progress=gr.Progress()):
        # The app may be public: pasted URLs, like search results, must not reach its own network.
        report = download_progress(progress)
        msg = curate.add_urls(root, c, text, allow_private=ui_collect.ALLOW_PRIVATE_URLS, progress=report)
        return everything(c, msg) | ({im["urls"]: ""} if msg.startswith("Added") else {})

    im["url_btn"].click(friendly(on_urls), [im["cls"], im["urls"]], [*all_outputs, im["urls"]], **PRIVATE)

    def on_export():
        path, msg = curate.export_view(root)
        return msg, path

    im["export_btn"].click(friendly(on_export), None, [status, im["export_file"]], **PRIVATE)

    # ---- trash
    for button, step in ((tr["prev_btn"], -1), (tr["next_btn"], 1)):
        # Another page keeps the selection (like the class gallery's): only the page's own outputs change.
        button.click(
            friendly(lambda p, step=step: trash_view(p + step, whole=False)), [trash_page], trash_page_outputs, **PRIVATE
        )

    def trash_toggle(evt: gr.SelectData, ids, sel):
        if evt.index is not None and evt.index < len(ids):
            sel = curate.toggle(sel, ids[evt.index])
        return sel, curate.selection_line(trash_labels(sel), "trashed image")

    tr["grid"].select(trash_toggle, [trash_shown, trash_picked], [trash_picked, tr["selected"]], **ONE_AT_A_TIME)
    tr["restore_btn"].click(act(lambda ids: curate.restore(root, ids)), [im["cls"], page, trash_picked], all_outputs, **PRIVATE)
    tr["empty_btn"].click(
        act(lambda ok, n: curate.empty_trash(root, ok, n)), [im["cls"], page, tr["confirm"], trash_count], all_outputs, **PRIVATE
    )

    # ---- review
    review_shown, review_picked, current = gr.State([]), gr.State([]), gr.State(None)

    def review_meta(name):
        if not name:
            return None
        try:
            return read_meta(ctx.models_dir / name)
        except ModelError:
            return None

    def current_view(rels, index):
        """(the current image's index, clamped, or None; the line that names it)."""
        if index is None or not rels:
            return None, "Click an image (or press → ) to make it the current image."
        index = max(0, min(index, len(rels) - 1))
        return index, f"Current: **{escape_md(rels[index])}** ({index + 1} of {len(rels)})"

    def review_view(name, c, split, pred="all", index=None):
        meta = review_meta(name)
        df = curate.review_table(root, meta, c, split, pred)
        rels = list(df["image"]) if not df.empty else []
        captions = [
            f"{r['image'].split('/', 1)[1]}: {r['label']} → {r['predicted']} (loss {r['loss']})" for _, r in df.iterrows()
        ]
        model_classes = (meta or {}).get("classes") or []
        classes = ["all", *model_classes]
        index, line = current_view(rels, index)
        return {
            rv["table"]: df,
            rv["grid"]: _gallery([(str(root / r), cap) for r, cap in zip(rels, captions)], selected_index=index),
            review_shown: rels,
            rv["selected"]: curate.selection_line([]),
            rv["cls"]: gr.Dropdown(choices=classes, value=c if c in classes else "all"),
            review_picked: [],
            rv["pred"]: gr.Dropdown(choices=classes, value=pred if pred in classes else "all"),
            rv["split"]: split,
            rv["matrix"]: curate.review_confusion(meta),
            rv["keys"]: curate.review_keys_legend(model_classes),
            current: index,
            rv["current_line"]: line,
        }

    def review_cell_view(evt: gr.SelectData, name, c, split, pred):
        """A click on the confusion matrix: that cell's validation images."""
        cell = curate.review_cell(review_meta(name), evt.index)
        return review_view(name, cell[0], "valid", cell[1]) if cell else review_view(name, c, split, pred)

    review_outputs = [
        *(rv["table"], rv["grid"], review_shown, rv["selected"], rv["cls"], review_picked),
        *(rv["pred"], rv["split"], rv["matrix"], rv["keys"], current, rv["current_line"]),
    ]
    review_filters = [rv["model"], rv["cls"], rv["split"], rv["pred"]]
    rv["model"].change(friendly(review_view), review_filters, review_outputs, **PRIVATE)
    for comp in (rv["cls"], rv["split"], rv["pred"]):  # user changes only: review_view sets them too
        comp.input(friendly(review_view), review_filters, review_outputs, **PRIVATE)
    rv["matrix"].select(friendly(review_cell_view), review_filters, review_outputs, **PRIVATE)

    def review_click(evt: gr.SelectData, rels, sel):
        """A click selects (or unselects) an image for the buttons and makes it the current one for the keys."""
        if evt.index is None or evt.index >= len(rels):
            return {review_picked: sel, rv["selected"]: curate.selection_line(sel)}
        sel = curate.toggle(sel, rels[evt.index])
        index, line = current_view(rels, evt.index)
        return {review_picked: sel, rv["selected"]: curate.selection_line(sel), current: index, rv["current_line"]: line}

    rv["grid"].select(
        review_click, [review_shown, review_picked], [review_picked, rv["selected"], current, rv["current_line"]], **ONE_AT_A_TIME
    )
    rv["connect_explain"](rv["grid"], review_shown)

    def review_act(action):
        def run(c, name, rc, split, pred, *args):
            try:
                msg = action(*args)
            except OtterError as ex:
                msg = f"⚠️ {escape_md(one_line(ex))}"
            return everything(c, msg) | review_view(name, rc, split, pred)

        return friendly(run)

    review_inputs = [im["cls"], *review_filters]
    rv["move_btn"].click(
        review_act(lambda sel, t: curate.move(root, sel, t)),
        [*review_inputs, review_picked, rv["target"]],
        all_outputs + review_outputs,
        **PRIVATE,
    )
    rv["delete_btn"].click(
        review_act(lambda sel: curate.delete(root, sel, reason="deleted in review")),
        [*review_inputs, review_picked],
        all_outputs + review_outputs,
        **PRIVATE,
    )

    def on_key(evt: gr.EventData, c, name, rc, split, pred, rels, index):
        """A key in the review (REVIEW_KEYS_JS): relabel or trash the current image, or move to another one."""
        meta = review_meta(name)
        key = evt._data.get("key") if isinstance(evt._data, dict) else None  # None: a mouse click on the legend
        what = curate.review_key(key, (meta or {}).get("classes") or [])
        if what is None or not rels:
            return gr.skip()
        kind, arg = what
        if kind == "move":  # from no current image, either arrow starts at the first
            index, line = current_view(rels, 0 if index is None else index + int(arg))
            return {rv["grid"]: gr.Gallery(selected_index=index), current: index, rv["current_line"]: line}
        if index is None:
            msg = "Click an image (or press → ) first: the keys act on the current image."
            return everything(c, msg) | review_view(name, rc, split, pred)
        image = rels[min(index, len(rels) - 1)]
        if kind == "relabel":
            msg = curate.move(root, [image], arg)
        else:
            msg = curate.delete(root, [image], reason="deleted in review")
        # The image leaves the list; the next one takes its place and becomes the current image.
        return everything(c, msg) | review_view(name, rc, split, pred, index)

    rv["keys"].click(friendly(on_key), [*review_inputs, review_shown, current], all_outputs + review_outputs, **ONE_AT_A_TIME)

    # ---- duplicates: trashing a look-alike changes the counts, the class gallery and the trash
    for event in dups["changed"]:
        event.then(friendly(everything), [im["cls"]], all_outputs, **PRIVATE)

    def on_load(c):
        names = ctx.models.names()
        return everything(c) | {rv["model"]: gr.Dropdown(choices=names, value=names[0] if names else None)}

    return {
        "refresh": (friendly(on_load), [im["cls"]], all_outputs + [rv["model"]]),
        "review_model": rv["model"],
    }
