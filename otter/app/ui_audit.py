"""Curate › Suspects: the audit's most suspect images, one-click fixes, and a clickable out-of-fold confusion matrix.

Only widgets and wiring: the logic is in `otter.review.audit` (the audit, its job and the actions) and
`otter.app.audit_view` (what is shown), both tested without Gradio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from ..data.dataset import list_classes
from ..errors import escape_md
from ..model.train import TrainError
from ..review import audit
from . import audit_view
from .handlers import POLL_SECONDS

FOLDS = audit.DEFAULT_FOLDS
CONFIG_OVERRIDES: dict = {}  # TrainConfig fields for the app's fine-tuning audits (tests make them tiny)
PRIVATE = {"api_visibility": "private"}
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


@dataclass
class SuspectsTab:
    status: gr.Markdown
    title: gr.Markdown
    grid: gr.Gallery
    shown: gr.State  # class/file of the gallery's images, in order
    matrix: gr.Dataframe
    pick: gr.State  # class/file of the clicked image
    picked: gr.Markdown
    cell: gr.State  # (given, predicted) while a matrix cell is shown, else None
    cls: gr.Dropdown
    method: gr.Radio
    run_btn: gr.Button
    cancel_btn: gr.Button
    relabel_btn: gr.Button
    keep_btn: gr.Button
    trash_btn: gr.Button
    back_btn: gr.Button
    timer: gr.Timer

    @property
    def outputs(self) -> list:
        """What `view` fills."""
        return [self.status, self.title, self.grid, self.shown, self.matrix, self.pick, self.picked]


def _declare() -> SuspectsTab:
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
    # Fixed columns: with fit_columns, two suspects became two huge cropped images, their captions out of view.
    grid = gr.Gallery(
        columns=6, fit_columns=False, height=400, allow_preview=False, label="Images (click one)", elem_id="audit-gallery"
    )
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
    shown = (status, title, grid, gr.State([]), matrix, gr.State(None), picked, gr.State(None), cls, method)
    buttons = (run_btn, cancel_btn, relabel_btn, keep_btn, trash_btn, back_btn)
    return SuspectsTab(*shown, *buttons, gr.Timer(POLL_SECONDS, active=False))


def view(root, t: SuspectsTab, c, cl, msg="") -> dict:
    """The suspects of class `c` (or the images of matrix cell `cl`), the audit's status and its matrix."""
    result = audit.load_audit(root)
    cell_v = tuple(cl) if cl else None
    rows = audit_view.cell_rows(result, cell_v) if cell_v else audit_view.suspects(result, c)
    items = audit_view.gallery(root, rows)
    return {
        t.status: audit_view.status_markdown(root, result, audit.AuditJob.current()),
        t.title: audit_view.view_title(cell_v, len(items)),
        t.grid: items,
        t.shown: [r["image"] for r in rows if (root / r["image"]).is_file()],
        t.matrix: audit_view.confusion_table(result),
        t.pick: None,
        t.picked: msg,
    }


def class_choices(root, c) -> gr.Dropdown:
    classes = ["all", *list_classes(root)]
    return gr.Dropdown(choices=classes, value=c if c in classes else "all")


def audit_row(root, image: str) -> dict | None:
    """The last audit's row of `image`, if it has one."""
    result = audit.load_audit(root)
    return next((r for r in (result.rows if result else []) if r["image"] == image), None)


def fix(root, action: str, image: str | None) -> str:
    """Relabel `image` to the audit's suggestion, keep it, or trash it; one line saying what was done."""
    if not image:
        return "Click an image first."
    try:
        if action == "relabel":
            row = audit_row(root, image)
            if row is None or row["suggested"] == row["label"]:
                return f"The audit suggests no other class for {image}; keep it or move it to the trash."
            return f"Relabelled {image} → {audit.relabel(root, image, row['suggested'])}."
        if action == "keep":
            audit.keep(root, image)
            return f"Kept {image}: it will not be flagged again while it has this label."
        trash_id = audit.trash(root, image)
        return f"Moved {image} to the trash (restore it from the Trash view; id {trash_id})."
    except (TrainError, ValueError, OSError) as ex:
        return f"⚠️ {str(ex).splitlines()[0]}"


def _build(ctx, wrap: Callable[[Callable], Callable], tab: gr.Tab) -> None:
    root = ctx.data_dir
    t = _declare()

    @t.grid.select(inputs=[t.shown], outputs=[t.pick, t.picked], **PRIVATE)
    def on_pick(evt: gr.SelectData, rels):
        if evt.index is None or evt.index >= len(rels):
            return None, ""
        image = rels[evt.index]
        row = audit_row(root, image)
        if row is None:
            return image, f"Selected **{escape_md(image)}**."
        return (
            image,
            f"Selected **{escape_md(image)}**: given **{escape_md(row['label'])}**, suggested **{escape_md(row['suggested'])}** (score {row['score']:.2f}).",
        )

    for btn, name in ((t.relabel_btn, "relabel"), (t.keep_btn, "keep"), (t.trash_btn, "trash")):
        btn.click(
            wrap(lambda c, cl, image, name=name: view(root, t, c, cl, fix(root, name, image))),
            [t.cls, t.cell, t.pick],
            t.outputs,
            **PRIVATE,
        )
    for event in (t.cls.change, t.back_btn.click):
        event(wrap(lambda c: view(root, t, c, None) | {t.cell: None}), [t.cls], [*t.outputs, t.cell], **PRIVATE)

    @t.matrix.select(inputs=[t.cls], outputs=[*t.outputs, t.cell], **PRIVATE)
    @wrap
    def on_cell(evt: gr.SelectData, c):
        chosen = audit_view.cell_of(audit.load_audit(root), evt.index)
        return view(root, t, c, chosen) | {t.cell: chosen}

    _wire_job(ctx, wrap, tab, t)


def _wire_job(ctx, wrap: Callable[[Callable], Callable], tab: gr.Tab, t: SuspectsTab) -> None:
    """Run audit (a background job, polled by the timer), Cancel, and what opening the tab shows."""
    root = ctx.data_dir

    @t.run_btn.click(inputs=[t.cls, t.cell, t.method], outputs=[*t.outputs, t.timer, t.cancel_btn], **PRIVATE)
    @wrap
    def start(c, cl, how):
        try:
            method = "embeddings" if how in (None, "embeddings") else "finetune"
            cfg = audit.quick_config(**({"pretrained": how == "finetune"} | CONFIG_OVERRIDES)) if method == "finetune" else None
            audit.AuditJob(root, folds=FOLDS, config=cfg, models_dir=ctx.models_dir, method=method).start()
        except TrainError as ex:
            return view(root, t, c, cl, f"⚠️ {ex}")  # only a tick stops the timer
        return view(root, t, c, cl, "Audit started.") | {
            t.timer: gr.Timer(active=True),
            t.cancel_btn: gr.Button(interactive=True),
        }

    @t.cancel_btn.click(outputs=[t.picked], **PRIVATE)
    @wrap
    def cancel():
        job = audit.AuditJob.current()
        if job is None or not job.running:
            return "No audit is running."
        job.cancel()
        return "Cancelling: the audit stops after the current batch; the previous audit is kept."

    @t.timer.tick(inputs=[t.cls, t.cell], outputs=[*t.outputs, t.timer, t.cls, t.cancel_btn], **PRIVATE)
    @wrap
    def tick(c, cl):
        job = audit.AuditJob.current()
        if job is not None and job.running:
            return {t.status: audit_view.job_line(job), t.timer: gr.Timer(active=True), t.cancel_btn: gr.Button(interactive=True)}
        # Stop polling after showing the end, unless an audit was started meanwhile (its Start re-armed the timer).
        again = audit.AuditJob.current()
        busy = again is not None and again.running
        return view(root, t, c, cl) | {
            t.timer: gr.Timer(active=busy),
            t.cls: class_choices(root, c),
            t.cancel_btn: gr.Button(interactive=busy),
        }

    @tab.select(inputs=[t.cls], outputs=[*t.outputs, t.cell, t.timer, t.cls, t.cancel_btn], **PRIVATE)
    @wrap
    def on_open(c):
        job = audit.AuditJob.current()
        running = job is not None and job.running
        shown_v = view(root, t, c, None) | {
            t.cell: None,
            t.cls: class_choices(root, c),
            t.cancel_btn: gr.Button(interactive=running),
        }
        return shown_v | ({t.timer: gr.Timer(active=True)} if running else {})  # start it, never stop it
