"""Train › Models: every model (accuracy, size, date, the default), delete one (to the models trash), and the
models trash with Restore (under its name, or another when that name is taken).

Only widgets and wiring, each listener right above its handler; the logic is in `otter.app.models_view` (tested
without Gradio). Every event here is an owner's (`otter.app.owners.guard_events`): the panel sits in the Train
tab's owner-only column, and the page's config carries no model name (the lists are filled on load).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from . import models_view
from .handlers import AppContext, friendly, model_picker_update

PRIVATE = {"api_visibility": "private"}


@dataclass
class ModelsPanel:
    table: gr.Dataframe
    pick: gr.Dropdown
    message: gr.Markdown
    trash_line: gr.Markdown
    trash_pick: gr.Dropdown

    @property
    def outputs(self) -> list:
        """What `view` fills, in order (for events declared elsewhere: the page's load, a finished training)."""
        return [self.table, self.pick, self.trash_line, self.trash_pick]


def view(ctx: AppContext, panel: ModelsPanel) -> dict:
    """The models and the models trash as they are now."""
    names = ctx.models.names()
    choices = models_view.trash_choices(ctx.models_dir)
    return {
        panel.table: models_view.models_table(ctx.models_dir),
        panel.pick: gr.Dropdown(choices=names, value=None),
        panel.trash_line: models_view.trash_markdown(ctx.models_dir),
        panel.trash_pick: gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
    }


def elsewhere(ctx: AppContext) -> dict:
    """The other tabs' model pickers (Predict's, Review's), after a model came or went."""
    names = ctx.models.names()
    return {
        ctx.shared["picker"]: model_picker_update(ctx),
        ctx.shared["review_model"]: gr.Dropdown(choices=names, value=names[0] if names else None),
    }


def build_models_panel(ctx: AppContext) -> ModelsPanel:
    """Declare the panel where it is called (inside the Train tab); Predict's picker and Review's model dropdown
    (`ctx.shared`) must exist already."""
    with gr.Accordion("Models", open=False, elem_id="models-panel") as box:
        table = gr.Dataframe(label="Models, newest first (* the default)", interactive=False, elem_id="models-table")
        with gr.Row(equal_height=True):
            pick = gr.Dropdown(label="Model", choices=[], elem_id="models-pick", scale=3)
            delete = gr.Button("Delete (to the models trash)", variant="stop", elem_id="models-delete", scale=1)
        message = gr.Markdown(elem_id="models-message")
        gr.Markdown("**Models trash**: replaced and deleted models, newest first.")
        trash_line = gr.Markdown(elem_id="models-trash")
        with gr.Row(equal_height=True):
            trash_pick = gr.Dropdown(label="Trashed model", choices=[], elem_id="models-trash-pick", scale=3)
            as_name = gr.Textbox(label="Restore as (blank: its own name)", elem_id="models-restore-as", scale=2)
            restore = gr.Button("Restore", elem_id="models-restore", scale=1)
    panel = ModelsPanel(table, pick, message, trash_line, trash_pick)
    others = list(elsewhere(ctx))
    after_change = [*panel.outputs, message, *others]

    @box.expand(outputs=panel.outputs, **PRIVATE)
    @friendly
    def on_open():
        return view(ctx, panel)

    @delete.click(inputs=[pick], outputs=after_change, **PRIVATE)
    @friendly
    def on_delete(name):
        line = models_view.delete_line(ctx.models_dir, name)
        return view(ctx, panel) | {message: line} | elsewhere(ctx)

    @restore.click(inputs=[trash_pick, as_name], outputs=[*after_change, as_name], **PRIVATE)
    @friendly
    def on_restore(trash_id, name):
        line = models_view.restore_line(ctx.models_dir, trash_id, name)
        done = not line.startswith("⚠️")  # a refusal keeps the typed name, to be corrected
        return view(ctx, panel) | {message: line, as_name: "" if done else gr.skip()} | elsewhere(ctx)

    return panel
