"""Curate › Duplicates: look-alike pairs side by side (trash either one, or say "not a duplicate"), and the groups
of exact copies and look-alikes with one click to trash the extras.

Only widgets and wiring: the logic is in `otter.app.curate` (the views and actions) and `otter.review.similar` (the search
and its background job), both tested without Gradio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from ..model.jobs import TrainError
from ..review.similar import MAX_HASH_BITS, NEAR_SCORE, LookalikeJob
from . import curate
from .handlers import POLL_SECONDS
from .jobview import fmt_time as _fmt_time

PRIVATE = {"api_visibility": "private"}


def job_line(job: LookalikeJob | None) -> str:
    """The search's progress, or how it ended."""
    if job is None:
        return ""
    if job.running:
        last = job.last("embed")
        if last is None:
            return "Looking at the images…"
        return (
            f"Computing embeddings: {last.done}/{last.total} new images · about {_fmt_time(last.eta)} left "
            "(once per image: later searches take seconds)"
        )
    if job.state in ("failed", "cancelled"):
        return f"⚠️ {job.error}"
    return ""


def build_duplicates_tab(ctx, wrap: Callable[[Callable], Callable] = lambda f: f) -> dict:
    """Declare the Duplicates tab inside the current `gr.Tabs`; `ctx` is the app's AppContext. Returns {"changed":
    [events after which images were moved to the trash]} so the caller refreshes its other views. Opening the tab
    shows the pairs from the embeddings computed so far (computing nothing)."""
    with gr.Tab("Duplicates", id="duplicates") as tab:
        return _build(ctx, wrap, tab)


@dataclass
class DuplicatesTab:
    status: gr.Markdown
    pairs: gr.Dataframe
    left: gr.Image
    right: gr.Image
    groups: gr.Dataframe
    grid: gr.Gallery
    pair: gr.State  # (left, right) of the clicked pair
    find_btn: gr.Button
    cancel_btn: gr.Button
    trash_left: gr.Button
    trash_right: gr.Button
    different: gr.Button
    clean_btn: gr.Button
    timer: gr.Timer

    @property
    def outputs(self) -> list:
        """What `view` fills."""
        return [self.status, self.pairs, self.left, self.right, self.groups, self.grid, self.pair]


def _declare() -> DuplicatesTab:
    gr.Markdown(
        "**Look-alikes**: the same photo twice, cropped, mirrored, recoloured, re-encoded or blurred, found from what "
        "the pretrained network sees in each image. Pairs filed under different classes come first: one of the two "
        f"has the wrong label. *score*: how much more alike the two are than each is to its closest other images; "
        f"from {NEAR_SCORE:.2f} they count as look-alikes, and so do two images whose perceptual hashes differ in at "
        f"most {MAX_HASH_BITS} of 64 bits (*hash bits*: blurred, shrunk or re-encoded copies, which can score low). "
        "`python -m otter verify` groups them the same way."
    )
    with gr.Row():
        find_btn = gr.Button("Find look-alikes", variant="primary", elem_id="dup-find", scale=1)
        cancel_btn = gr.Button("Cancel", elem_id="dup-cancel", scale=1)
    status = gr.Markdown(elem_id="dup-status")
    pairs = gr.Dataframe(interactive=False, label="Most similar pairs (click one to see it)", elem_id="dup-pairs", max_height=320)
    with gr.Row():
        left = gr.Image(label="left", interactive=False, height=260, elem_id="dup-left")
        right = gr.Image(label="right", interactive=False, height=260, elem_id="dup-right")
    with gr.Row():
        trash_left = gr.Button("Trash left", variant="stop", elem_id="dup-trash-left")
        trash_right = gr.Button("Trash right", variant="stop", elem_id="dup-trash-right")
        different = gr.Button("Not a duplicate", elem_id="dup-different")
    gr.Markdown(
        "**Groups**: exact copies (same bytes) and look-alikes. *Trash the extra copies* moves all but the first "
        "file of each group of exact copies to the trash; look-alikes are checked pair by pair above (on a small "
        "data set, different photos of one scene can score as look-alikes)."
    )
    groups = gr.Dataframe(interactive=False, label="Groups", elem_id="dup-groups")
    grid = gr.Gallery(columns=6, fit_columns=False, height=320, allow_preview=True, label="The groups' images (kept one first)")
    clean_btn = gr.Button("Trash the extra copies", variant="stop", elem_id="dup-clean")
    shown = (status, pairs, left, right, groups, grid, gr.State(None))
    buttons = (find_btn, cancel_btn, trash_left, trash_right, different, clean_btn)
    return DuplicatesTab(*shown, *buttons, gr.Timer(POLL_SECONDS, active=False))


def view(root, t: DuplicatesTab, msg: str = "", chosen=None) -> dict:
    """The pairs, the clicked pair side by side (if both images are still there), the groups and their images."""
    pairs_df, groups_df, note = curate.lookalike_views(root)
    (lp, lc), (rp, rc) = curate.pair_images(root, chosen)
    shown = chosen if chosen and lp and rp else None
    if not shown:
        (lp, lc), (rp, rc) = curate.pair_images(root, None)
    line = " ".join(x for x in (msg, note) if x) or curate.lookalike_summary(pairs_df, groups_df)
    return {
        t.status: line,
        t.pairs: pairs_df,
        t.left: gr.Image(value=lp, label=lc),
        t.right: gr.Image(value=rp, label=rc),
        t.groups: groups_df,
        t.grid: curate.gallery(root, curate.duplicate_images(groups_df)),
        t.pair: shown,
    }


def _build(ctx, wrap: Callable[[Callable], Callable], tab: gr.Tab) -> dict:
    root = ctx.data_dir
    t = _declare()
    _wire_search(root, wrap, tab, t)

    @t.pairs.select(inputs=[t.pairs], outputs=t.outputs, **PRIVATE)
    @wrap
    def pick(evt: gr.SelectData, table):
        return view(root, t, "", curate.pair_at(table, evt.index))

    def act(action):
        return wrap(lambda chosen: view(root, t, action(chosen), None))

    changed = [
        t.trash_left.click(act(lambda p: curate.trash_lookalike(root, p, 0)), [t.pair], t.outputs, **PRIVATE),
        t.trash_right.click(act(lambda p: curate.trash_lookalike(root, p, 1)), [t.pair], t.outputs, **PRIVATE),
        t.clean_btn.click(
            wrap(lambda table: view(root, t, curate.trash_duplicates(root, table))), [t.groups], t.outputs, **PRIVATE
        ),
    ]
    t.different.click(act(lambda p: curate.not_duplicate(root, p)), [t.pair], t.outputs, **PRIVATE)
    return {"changed": changed}


def _wire_search(root, wrap: Callable[[Callable], Callable], tab: gr.Tab, t: DuplicatesTab) -> None:
    """Find look-alikes (a background job, polled by the timer), Cancel, and what opening the tab shows."""

    @t.find_btn.click(outputs=[*t.outputs, t.timer], **PRIVATE)
    @wrap
    def find():
        try:
            LookalikeJob(root).start()
        except TrainError as ex:
            return view(root, t, f"⚠️ {ex}")  # only a tick stops the timer
        return {t.status: job_line(LookalikeJob.current()) or "Looking at the images…", t.timer: gr.Timer(active=True)}

    @t.cancel_btn.click(outputs=[t.status], **PRIVATE)
    @wrap
    def cancel():
        job = LookalikeJob.current()
        if job is None or not job.running:
            return "No search is running."
        job.cancel()
        return "Cancelling: the embeddings computed so far are kept."

    @t.timer.tick(inputs=[t.pair], outputs=[*t.outputs, t.timer], **PRIVATE)
    @wrap
    def tick(chosen):
        job = LookalikeJob.current()
        if job is not None and job.running:
            return {t.status: job_line(job), t.timer: gr.Timer(active=True)}
        # Stop polling after showing the end, unless a search was started meanwhile (its Find re-armed the timer).
        again = LookalikeJob.current()
        return view(root, t, job_line(job), chosen) | {t.timer: gr.Timer(active=again is not None and again.running)}

    @tab.select(inputs=[t.pair], outputs=[*t.outputs, t.timer], **PRIVATE)
    @wrap
    def on_open(chosen):
        job = LookalikeJob.current()
        if job is not None and job.running:
            return {t.status: job_line(job), t.timer: gr.Timer(active=True)}
        return view(root, t, "", chosen)  # a search started meanwhile keeps its timer
