"""The Train tab: the settings, Start and Cancel, the running job (status, progress bar, epochs, loss), the results
of the last model (lr_find curve, confusion matrix, per-class figures, the model as a zip) and "Use for Predict".
The logic is in `otter.app.jobview` and `otter.app.service` (tested without Gradio); the Models panel below it
is `otter.app.ui_models`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .. import config
from ..errors import OtterError, escape_md, one_line
from ..model.backbones import NAMES as ARCHS
from ..model.default_model import comparison, set_default
from ..model.io import ModelError, read_meta
from ..model.model_zip import zip_model
from ..model.recipes import both
from . import jobview
from .handlers import IDLE_POLL_SECONDS, POLL_SECONDS, AppContext, friendly, model_picker_update
from .service import default_model_name


def results_view(ctx: AppContext, name: str | None):
    """The lr_find curve, confusion matrix and per-class figures of a saved model."""
    meta = None
    if name:
        try:
            meta = read_meta(ctx.models_dir / name)
        except ModelError:
            meta = None
    lr_curve = jobview.lr_find_frame(meta)
    # The lr_find curve exists only when the learning rate was left blank; hide the empty plot otherwise.
    figure = jobview.confusion_figure(meta)
    return (
        gr.LinePlot(value=lr_curve, visible=not lr_curve.empty),
        gr.Plot(value=figure, visible=figure is not None),
        jobview.per_class_frame(meta),
    )


@dataclass
class TrainTab:
    form: dict  # the settings by name: arch, pretrained, sizes, epochs, lr, bs, valid, model_name
    start: gr.Button
    cancel: gr.Button
    message: gr.Markdown
    status: gr.Markdown
    bar: gr.HTML
    compare: gr.Markdown
    use: gr.Button
    table: gr.Dataframe
    plot: gr.Plot
    results_box: gr.Accordion
    lr_plot: gr.LinePlot
    confusion: gr.Plot
    per_class: gr.Dataframe
    zip_btn: gr.Button
    zip_file: gr.File
    finished: gr.State  # the name of the model `compare` is about
    shown_model: gr.State  # the model the results box is about
    watched: gr.State  # the model dir of the job this page last saw running
    timer: gr.Timer  # polls the job this page watches
    idle: gr.Timer  # slower, while no job is watched: notices a training another visitor started after the page loaded

    @property
    def outputs(self) -> list:
        """What a page load fills (`load_view`)."""
        job = [self.status, self.bar, self.table, self.plot, self.cancel, self.results_box, self.lr_plot, self.confusion]
        return [*job, self.per_class, self.compare, self.use, self.finished, self.shown_model, self.timer, *self.form.values()]


def declare_form(ctx: AppContext) -> dict:
    """The settings; blank fields take the recipe's values (shown as placeholders, from the recipe tables)."""
    with gr.Row():
        arch = gr.Dropdown([jobview.ARCH_DEFAULT, *ARCHS], value=jobview.ARCH_DEFAULT, label="Architecture")
        pretrained = gr.Checkbox(
            value=True,
            label="Start from ImageNet weights (efficientnet_lite0's ship with the app; ResNets download them once)",
            elem_id="train-pretrained",
        )
        # Blank means the name in the placeholder (classes and date, taken when Start is pressed): a page load
        # or a finished job only ever changes the placeholder, never what the user typed.
        model_name = gr.Textbox(label="Model name", placeholder=name_hint(ctx), elem_id="train-model-name")
    with gr.Row():
        sizes = gr.Textbox(
            label="Image sizes (progressive resizing)",
            placeholder=f"recipe: {both('sizes')}",
            elem_id="train-sizes",
        )
        epochs = gr.Textbox(label="Epochs per size", placeholder=f"recipe: {both('epochs')}", elem_id="train-epochs")
        lr = gr.Textbox(label="Learning rate", placeholder=f"recipe: {both('lr')}; or find", elem_id="train-lr")
        # A Textbox like its neighbours: a blank gr.Number reaches the server as 0, not as "blank".
        bs = gr.Textbox(label="Batch size", placeholder=f"recipe: {both('bs')}", elem_id="train-bs")
        valid = gr.Slider(0, 50, value=20, step=1, label="Validation %")
    form = {"arch": arch, "pretrained": pretrained, "sizes": sizes, "epochs": epochs, "lr": lr, "bs": bs}
    return form | {"valid": valid, "model_name": model_name}


ZERO_GPU_NOTE = (
    "This Space runs on **ZeroGPU**: predictions get a GPU, but training and the audit run on its CPU (a GPU slot "
    "lasts about a minute), so they are slow here. For more than a small model, train on your machine "
    "(`python -m otter train`) or on a Space with a dedicated GPU, and copy the model folder into this Space's models."
)


def declare_train_tab(ctx: AppContext) -> TrainTab:
    if config.on_zero_gpu():
        gr.Markdown(ZERO_GPU_NOTE, elem_id="train-zero-gpu")
    form = declare_form(ctx)
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="train-start")
        # Cancel can only be pressed while a job runs (a big red button for nothing confused users).
        cancel = gr.Button("Cancel", variant="stop", interactive=False, elem_id="train-cancel")
    message = gr.Markdown(elem_id="train-message")
    status = gr.Markdown(elem_id="train-status")
    bar = gr.HTML(elem_id="train-progress")
    with gr.Row():
        compare = gr.Markdown(elem_id="train-compare")  # the new model beside the default, once it is done
        use = gr.Button("Use for Predict", visible=False, elem_id="train-use", scale=0)
    with gr.Row():
        table = gr.Dataframe(label="Epochs", interactive=False, elem_id="train-epochs-table")
        # No label badge: it sat over the figure's top-left corner and hid the top tick; the figure has a title.
        plot = gr.Plot(label="Loss", show_label=False, elem_id="train-loss")
    with gr.Accordion("Results of the last model", open=True, elem_id="train-results") as results_box:
        with gr.Row():
            lr_plot = gr.LinePlot(x="log10_lr", y="loss", label="lr_find (loss against log10 learning rate)", height=240)
            confusion = gr.Plot(label="Confusion matrix")
        per_class = gr.Dataframe(label="Per class (validation)", interactive=False)
        with gr.Row():
            zip_btn = gr.Button("Download this model (.zip)", scale=0, elem_id="train-zip")
            zip_file = gr.File(label="Model folder as a zip", interactive=False, visible=False, elem_id="train-zip-file")
    widgets = (form, start, cancel, message, status, bar, compare, use, table, plot, results_box, lr_plot, confusion)
    timers = gr.Timer(POLL_SECONDS, active=False), gr.Timer(IDLE_POLL_SECONDS, active=False)
    return TrainTab(*widgets, per_class, zip_btn, zip_file, gr.State(None), gr.State(None), gr.State(None), *timers)


def build_train_tab(ctx: AppContext) -> dict:
    """Declare the tab inside the current `gr.Tab`; returns "refresh" (the page load's (fn, inputs, outputs))."""
    tab = declare_train_tab(ctx)
    wire_start(ctx, tab)
    wire_progress(ctx, tab)
    wire_results(ctx, tab)

    def on_load():
        return load_view(ctx, tab)

    return {"refresh": (friendly(on_load), None, [*tab.outputs, tab.idle])}


def job_view(ctx: AppContext, tab: TrainTab, running: bool) -> dict:
    """What every handler shows of the current job: status, bar, epochs, loss, Cancel's state."""
    job = ctx.trainer.job()
    state, events = (job.state, list(job.events)) if job else (None, [])
    return {
        tab.status: jobview.status_markdown(state, events, job and job.error, job and str(job.model_dir)),
        tab.bar: jobview.progress_html(state, events),
        tab.table: jobview.epoch_table(events),
        tab.plot: jobview.loss_figure(events),
        tab.cancel: gr.Button(interactive=running),
    }


def results(ctx: AppContext, tab: TrainTab, name: str | None, running: bool) -> dict:
    """The results box of model `name` (the finished one, else the newest), labelled with its name."""
    shown = name or ctx.models.newest()
    lr_v, conf_v, per_v = results_view(ctx, shown)
    box = gr.Accordion(label=results_label(shown, running))
    return {tab.results_box: box, tab.lr_plot: lr_v, tab.confusion: conf_v, tab.per_class: per_v, tab.shown_model: shown}


def load_view(ctx: AppContext, tab: TrainTab) -> dict:
    """The tab as a page (re)load shows it: the running job with its settings in the form, or the last results."""
    job = ctx.trainer.job()
    running = job is not None and job.running
    name = finished_name(ctx)
    view = job_view(ctx, tab, running) | results(ctx, tab, name, running)
    compare_v, use_v = comparison_view(ctx, name)
    view |= {tab.compare: compare_v, tab.use: use_v, tab.finished: name}
    view[tab.form["model_name"]] = gr.Textbox(placeholder=name_hint(ctx))
    if running:
        # A page opened (or reloaded) during training shows that job's settings, not the form's defaults;
        # a load may start the timer, never stop it (it may finish after a Start on the same page).
        values = jobview.form_values(job.cfg, job.model_dir.name)
        view |= {tab.form[key]: value for key, value in values.items()} | {tab.timer: gr.Timer(active=True)}
    return view | {tab.idle: gr.Timer(active=True)}  # an owner's page (a visitor's load is refused)


def wire_start(ctx: AppContext, tab: TrainTab) -> None:
    settings = [tab.form[k] for k in ("arch", "pretrained", "sizes", "epochs", "lr", "bs", "valid", "model_name")]

    @tab.start.click(
        inputs=[*settings, tab.shown_model],
        outputs=[tab.message, tab.timer, tab.watched, tab.cancel, tab.results_box],
        api_visibility="private",
    )
    @friendly
    def on_start(arch_v, pre_v, sizes_v, epochs_v, lr_v, bs_v, valid_v, name_v, shown):
        try:
            cfg = jobview.parse_settings(arch_v, pre_v, sizes_v, epochs_v, lr_v, bs_v, valid_v)
            job = ctx.trainer.start(cfg, (name_v or "").strip() or default_model_name(ctx.data_dir, ctx.models_dir))
        except OtterError as ex:
            return {tab.message: f"⚠️ {escape_md(one_line(ex))}"}  # only a tick stops the timer (see on_tick)
        msg = f"Started training **{escape_md(job.model_dir.name)}** ({cfg.arch}, sizes {','.join(map(str, cfg.sizes))}, pretrained {'on' if cfg.pretrained else 'off'})."
        if job.model_dir.name in ctx.models.names():
            msg += " When it finishes it replaces the model of that name, which goes to the models trash; until then that model keeps answering."
        view = {tab.message: msg, tab.timer: gr.Timer(active=True), tab.watched: str(job.model_dir)}
        view[tab.cancel] = gr.Button(interactive=True)
        if shown:  # the results below are the previous model's until this one is done
            view[tab.results_box] = gr.Accordion(label=results_label(shown, running=True))
        return view

    tab.cancel.click(friendly(lambda: ctx.trainer.cancel()), None, [tab.message], api_visibility="private")


def wire_progress(ctx: AppContext, tab: TrainTab) -> None:
    """The two timers: the job this page watches (every POLL_SECONDS), a job started elsewhere (IDLE_POLL_SECONDS)."""
    picker, review_model, model_name = ctx.shared["picker"], ctx.shared["review_model"], tab.form["model_name"]
    outputs = [*tab.outputs, tab.message, picker, review_model, tab.watched]

    @tab.timer.tick(inputs=[tab.watched], outputs=outputs, api_visibility="private")
    @friendly
    def on_tick(seen):
        job = ctx.trainer.job()
        if job is not None and job.running:
            return job_view(ctx, tab, True) | {tab.timer: gr.Timer(active=True), tab.watched: str(job.model_dir)}
        # Finished (or nothing running): stop polling; show results, the comparison with the default (which
        # Predict keeps using) and a fresh name for the next model. Only a tick stops the timer, after showing
        # the end, and only if no job was started meanwhile (its Start may have re-armed the timer already).
        name = finished_name(ctx)
        again = ctx.trainer.running()
        view = job_view(ctx, tab, again) | results(ctx, tab, name, again)
        compare_v, use_v = comparison_view(ctx, name)
        view |= {tab.compare: compare_v, tab.use: use_v, tab.finished: name}
        view |= {tab.timer: gr.Timer(active=again), tab.watched: None}
        if seen and not again:
            view[tab.message] = ""  # "Started…" or "already running" would be stale next to "Done"
        if name:  # model pickers and the next name only change when a model was written
            view |= {picker: model_picker_update(ctx), review_model: gr.Dropdown(choices=ctx.models.names(), value=name)}
            view |= {model_name: gr.Textbox(placeholder=name_hint(ctx))}
        return view

    @tab.idle.tick(inputs=[tab.watched], outputs=[*tab.outputs, tab.watched, tab.idle], api_visibility="private")
    @friendly
    def on_idle(seen):
        """A job this page does not show yet (started elsewhere): show it as a reload would, and follow it."""
        job = ctx.trainer.job()
        if job is None or not job.running or seen == str(job.model_dir):
            return gr.skip()
        return load_view(ctx, tab) | {tab.watched: str(job.model_dir)}


def wire_results(ctx: AppContext, tab: TrainTab) -> None:
    """Use for Predict, and the model as a zip."""
    picker = ctx.shared["picker"]

    @tab.use.click(inputs=[tab.finished], outputs=[tab.compare, tab.use, picker], api_visibility="private")
    @friendly
    def on_use(name):
        set_default(ctx.models_dir, name)
        done = (
            f"**{escape_md(name)}** is now the default model: Predict, the `/predict` API and `python -m otter predict` use it."
        )
        return done, gr.Button(visible=False), model_picker_update(ctx, name)

    @tab.zip_btn.click(inputs=[tab.shown_model], outputs=[tab.zip_file], api_visibility="private")
    @friendly
    def on_zip(name):
        if not name:
            raise gr.Error("No model to download yet: train one first.", print_exception=False)
        path = zip_model(ctx.models_dir / name, Path(tempfile.gettempdir()) / "otter-model-zips")
        return gr.File(value=str(path), visible=True)


def results_label(shown: str | None, running: bool) -> str:
    """The Train tab's results box title: whose results they are, and that a model in training is not it."""
    if not shown:
        return "Results of the last model"
    return f"Results of model {shown}" + (" (the model in training shows its own when it finishes)" if running else "")


def name_hint(ctx: AppContext) -> str:
    """The Model name box's placeholder: what a blank name becomes."""
    return f"blank: {default_model_name(ctx.data_dir, ctx.models_dir)}"


def finished_name(ctx: AppContext) -> str | None:
    """The model the last training wrote, if it finished and the model is still there."""
    job = ctx.trainer.job()
    if job is None or job.state != "done" or job.model_dir.name not in ctx.models.names():
        return None
    return job.model_dir.name


def comparison_view(ctx: AppContext, name: str | None):
    """The new model beside the default (`otter.model.default_model.comparison`), and "Use for Predict" when it is
    not the default already."""
    if name is None:
        return "", gr.Button(visible=False)
    return comparison(ctx.models_dir, name), gr.Button(visible=ctx.models.default() != name)
