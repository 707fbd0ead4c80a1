"""Curate › Suspects: the audit's most suspect images, one-click fixes, and a clickable out-of-fold confusion matrix.

Only widgets and wiring: the logic is in `otter.review.audit` (the audit, its job and the actions) and
`otter.app.audit_view` (what is shown), both tested without Gradio.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from ..data.dataset import list_classes
from ..errors import escape_md
from ..model.train import TrainError
from ..review import audit
from . import audit_view
from .handlers import POLL_SECONDS

FOLDS = audit.DEFAULT_FOLDS
CONFIG_OVERRIDES: dict = {}  # TrainConfig fields for the app's fine-tuning audits (tests make them tiny)
METHOD_CHOICES = {  # what the Method radio offers: (audit method, pretrained) by key
    "embeddings": "heads on the pretrained network's embeddings (seconds once computed)",
    "finetune": "fine-tuned networks (minutes)",
    "scratch": "networks trained from scratch (slower, rougher)",
}


def build_suspects_tab(ctx, wrap: Callable[[Callable], Callable] = lambda f: f) -> gr.Tab:
    """Declare the Suspects tab inside the current `gr.Tabs`; `ctx` is the app's AppContext. The view refreshes
    whenever the tab is opened (other views may have changed the data meanwhile)."""
    with gr.Tab("Suspects", id="suspects") as tab:
        _build(ctx, wrap, tab)
    return tab


def _build(ctx, wrap: Callable[[Callable], Callable], tab: gr.Tab) -> None:
    root = ctx.data_dir
    status = gr.Markdown(elem_id="audit-status")
    with gr.Row():
        run_btn = gr.Button("Run audit", variant="primary", elem_id="audit-run", scale=1)
        cancel_btn = gr.Button("Cancel", variant="stop", interactive=False, elem_id="audit-cancel", scale=1)
        method = gr.Radio(
            [(label, key) for key, label in METHOD_CHOICES.items()],
            value="embeddings",
            label="Judged by",
            elem_id="audit-method",
            scale=2,
        )
        cls = gr.Dropdown(label="Given class", choices=["all"], value="all", elem_id="audit-class", scale=2)
    title = gr.Markdown(elem_id="audit-title")
    grid = gr.Gallery(columns=6, height=360, allow_preview=False, label="Images (click one)", elem_id="audit-gallery")
    picked = gr.Markdown(elem_id="audit-picked")
    with gr.Row():
        relabel_btn = gr.Button("Relabel to the suggestion", elem_id="audit-relabel")
        keep_btn = gr.Button("Keep (the label is right)", elem_id="audit-keep")
        trash_btn = gr.Button("Move to trash", variant="stop", elem_id="audit-trash")
        back_btn = gr.Button("Show all suspects", elem_id="audit-back")
    matrix = gr.Dataframe(
        label="Out-of-fold confusion matrix: rows are the given labels, columns the predictions. Click a cell to see its images.",
        interactive=False,
        elem_id="audit-confusion",
    )
    shown = gr.State([])  # class/file of the gallery's images, in order
    cell = gr.State(None)  # (given, predicted) while a matrix cell is shown, else None
    pick = gr.State(None)  # class/file of the clicked image
    timer = gr.Timer(POLL_SECONDS, active=False)

    def view(c, cl, msg=""):
        result = audit.load_audit(root)
        cell_v = tuple(cl) if cl else None
        rows = audit_view.cell_rows(result, cell_v) if cell_v else audit_view.suspects(result, c)
        items = audit_view.gallery(root, rows)
        return {
            status: audit_view.status_markdown(root, result, audit.AuditJob.current()),
            title: audit_view.view_title(cell_v, len(items)),
            grid: items,
            shown: [r["image"] for r in rows if (root / r["image"]).is_file()],
            matrix: audit_view.confusion_table(result),
            pick: None,
            picked: msg,
        }

    outputs = [status, title, grid, shown, matrix, pick, picked]

    def class_choices(c):
        classes = ["all", *list_classes(root)]
        return gr.Dropdown(choices=classes, value=c if c in classes else "all")

    def on_pick(evt: gr.SelectData, rels):
        if evt.index is None or evt.index >= len(rels):
            return None, ""
        image = rels[evt.index]
        result = audit.load_audit(root)
        row = next((r for r in (result.rows if result else []) if r["image"] == image), None)
        if row is None:
            return image, f"Selected **{escape_md(image)}**."
        return (
            image,
            f"Selected **{escape_md(image)}**: given **{escape_md(row['label'])}**, suggested **{escape_md(row['suggested'])}** (score {row['score']:.2f}).",
        )

    def act(name):
        def run(c, cl, image):
            if not image:
                return view(c, cl, "Click an image first.")
            try:
                if name == "relabel":
                    result = audit.load_audit(root)
                    row = next((r for r in (result.rows if result else []) if r["image"] == image), None)
                    if row is None or row["suggested"] == row["label"]:
                        return view(c, cl, f"The audit suggests no other class for {image}; keep it or move it to the trash.")
                    msg = f"Relabelled {image} → {audit.relabel(root, image, row['suggested'])}."
                elif name == "keep":
                    audit.keep(root, image)
                    msg = f"Kept {image}: it will not be flagged again while it has this label."
                else:
                    trash_id = audit.trash(root, image)
                    msg = f"Moved {image} to the trash (restore it from the Trash view; id {trash_id})."
            except (TrainError, ValueError, OSError) as ex:
                msg = f"⚠️ {str(ex).splitlines()[0]}"
            return view(c, cl, msg)

        return wrap(run)

    def on_cell(evt: gr.SelectData, c):
        chosen = audit_view.cell_of(audit.load_audit(root), evt.index)
        return view(c, chosen) | {cell: chosen}

    def start(c, cl, how):
        try:
            method = "embeddings" if how in (None, "embeddings") else "finetune"
            cfg = audit.quick_config(**({"pretrained": how == "finetune"} | CONFIG_OVERRIDES)) if method == "finetune" else None
            audit.AuditJob(root, folds=FOLDS, config=cfg, models_dir=ctx.models_dir, method=method).start()
        except TrainError as ex:
            return view(c, cl, f"⚠️ {ex}")  # only a tick stops the timer
        return view(c, cl, "Audit started.") | {timer: gr.Timer(active=True), cancel_btn: gr.Button(interactive=True)}

    def cancel():
        job = audit.AuditJob.current()
        if job is None or not job.running:
            return "No audit is running."
        job.cancel()
        return "Cancelling: the audit stops after the current batch; the previous audit is kept."

    def tick(c, cl):
        job = audit.AuditJob.current()
        if job is not None and job.running:
            return {status: audit_view.job_line(job), timer: gr.Timer(active=True), cancel_btn: gr.Button(interactive=True)}
        # Stop polling after showing the end, unless an audit was started meanwhile (its Start re-armed the timer).
        again = audit.AuditJob.current()
        busy = again is not None and again.running
        return view(c, cl) | {timer: gr.Timer(active=busy), cls: class_choices(c), cancel_btn: gr.Button(interactive=busy)}

    private = {"api_visibility": "private"}
    grid.select(on_pick, [shown], [pick, picked], **private)
    for btn, name in ((relabel_btn, "relabel"), (keep_btn, "keep"), (trash_btn, "trash")):
        btn.click(act(name), [cls, cell, pick], outputs, **private)
    cls.change(wrap(lambda c: view(c, None) | {cell: None}), [cls], [*outputs, cell], **private)
    back_btn.click(wrap(lambda c: view(c, None) | {cell: None}), [cls], [*outputs, cell], **private)
    matrix.select(wrap(on_cell), [cls], [*outputs, cell], **private)
    run_btn.click(wrap(start), [cls, cell, method], [*outputs, timer, cancel_btn], **private)
    cancel_btn.click(wrap(cancel), None, [picked], **private)
    timer.tick(wrap(tick), [cls, cell], [*outputs, timer, cls, cancel_btn], **private)

    def on_open(c):
        job = audit.AuditJob.current()
        running = job is not None and job.running
        shown_v = view(c, None) | {cell: None, cls: class_choices(c), cancel_btn: gr.Button(interactive=running)}
        return shown_v | ({timer: gr.Timer(active=True)} if running else {})  # start it, never stop it

    tab.select(wrap(on_open), [cls], [*outputs, cell, timer, cls, cancel_btn], **private)
