"""The Gradio app: Predict, Curate and Train tabs. A thin declaration: every handler calls into `otter.app.service`,
`otter.app.curate` and `otter.app.jobview`, which hold the logic and are tested without Gradio.

Adding to the app (other features plug in here with small edits):
- a sub-tab of Curate: write `build_xxx_tab(ctx, wrap=friendly)` in its own `ui_xxx.py` and call it inside
  `otter.app.ui_curate.build_curate_tab`'s `with gr.Tabs():` block, where the comment "more Curate sub-tabs go
  here" is; what panels share (`AppContext`, `friendly`, `payload_path`) is in `otter.app.handlers`;
- something in Predict (an explanation image, a "not sure" note): add outputs in `build_predict_tab`
  and extend `predict_view` (events go after the "/predict" API's, which must stay the app's first);
- every event is an owner's (`otter.app.owners.guard_events`, applied once in `build_app`) unless its function
  is marked `visitors_may`, which only something that neither writes nor reads the data set may be; then add
  it to tests/test_owners.py's VISITORS_MAY.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from .. import config
from ..data.dataset import list_classes, list_images
from ..data.images import InvalidImage
from ..errors import OtterError, describe, escape_md, one_line
from ..model.backbones import NAMES as ARCHS
from ..model.default_model import comparison, set_default
from ..model.device import gpu_task
from ..model.io import ModelError, read_meta, recover, seed_models
from ..model.model_zip import zip_model
from ..model.recipes import both
from . import jobview
from .handlers import IDLE_POLL_SECONDS, POLL_SECONDS, AppContext, friendly, model_picker_update, payload_path
from .owners import (
    Access,
    RefuseFolders,
    access_from_env,
    default_model_for_visitors,
    guard_events,
    no_data_set_in_page,
    visitors_may,
)
from .service import (
    NO_MODEL,
    NOT_SURE_HEADING,
    NoModel,
    Prediction,
    TrainService,
    default_model_name,
    shared_model_service,
    write_csv,
)
from .ui_curate import build_curate_tab
from .ui_explain import build_explain_panel
from .ui_models import build_models_panel
from .ui_models import view as models_view

# -------------------------------------------------------------------------------------------- predict


@gpu_task
def predict_on_device(models_dir: str, path: str, model_name: str | None) -> Prediction:
    """One prediction; on ZeroGPU Spaces this call gets a GPU slot (see `otter.model.device.gpu_task`). Plain
    arguments only: ZeroGPU may run it in another process."""
    return shared_model_service(models_dir).predict(path, model_name)


@gpu_task
def predict_files_on_device(models_dir: str, paths: list[str], model_name: str | None):
    """Many photos at once (a DataFrame, see `ModelService.predict_files`), in one GPU slot on ZeroGPU Spaces."""
    return shared_model_service(models_dir).predict_files(paths, model_name)


def predict_view(ctx: AppContext, image, model_name: str | None) -> tuple[str | dict | None, str, bool]:
    """For the Predict tab: (what the label shows, the markdown below it, whether the photo can stay shown).

    Each thing is said once: "Not sure" is the label's heading (the reason and the probabilities are below it),
    and a file that is not a readable image is one line below the label (no pop-up), with False so the page
    removes it rather than show a broken-image icon."""
    path = payload_path(image)
    if path is None:
        return None, "", True
    try:
        pred = predict_on_device(str(ctx.models_dir), path, model_name)
    except NoModel:
        return None, NO_MODEL, True
    except InvalidImage as ex:
        return None, f"⚠️ {escape_md(one_line(ex))}", False
    if not pred.known:  # no confident label: the verdict, and the probabilities muted below it
        muted = " · ".join(f"{c} {p:.0%}" for c, p in sorted(pred.probs.items(), key=lambda kv: -kv[1]))
        return NOT_SURE_HEADING, f"{pred.not_sure_reason}\n\n_Probabilities anyway: {muted}_\n\n{pred.summary()}", True
    return pred.probs, pred.summary(), True


def predict_api(ctx: AppContext, image) -> dict:
    """The stable API: image in, {"label", "confidences": [{"label", "confidence"}]} out (default model), where
    "label" is the top class or "Not sure: ..." for a photo unlike the classes; errors are raised as one line."""
    path = payload_path(image)
    if path is None:
        raise gr.Error("no image given", print_exception=False)
    return predict_on_device(str(ctx.models_dir), path, None).label_data()


@dataclass
class BatchView:
    """What Predict's "Many photos at once" shows: the table (None: nothing to show), each readable photo with
    "label · file" as caption, the CSV file and a one-line note."""

    table: object = None  # a pandas DataFrame
    photos: list[tuple[str, str]] = field(default_factory=list)
    csv: str | None = None
    note: str = ""


def predict_many_view(ctx: AppContext, files, model_name: str | None) -> BatchView:
    if not files:
        return BatchView()
    if len(files) > config.MAX_FILES_PER_REQUEST:
        return BatchView(
            note=f"⚠️ {len(files)} photos: at most {config.MAX_FILES_PER_REQUEST} at once (the app's limit, OTTER_MAX_FILES)."
        )
    paths = [payload_path(f) for f in files]
    try:
        df = predict_files_on_device(str(ctx.models_dir), paths, model_name)
    except NoModel:
        return BatchView(note=NO_MODEL)
    csv = write_csv(df, tempfile.mkdtemp(prefix="otter-predictions-"))
    bad = int((df["error"] != "").sum())
    note = f"{len(df) - bad} classified" + (f", {bad} could not be read (see the error column)" if bad else "")
    # The label first: a thumbnail's caption is cut to its width.
    photos = [(path, f"{row.label} · {row.file}") for path, row in zip(paths, df.itertuples()) if not row.error]
    return BatchView(df, photos, str(csv), note)


def example_photos(data_dir: Path, per_class: int = 2) -> list[str]:
    """A couple of photos per class from the data folder (none when it is empty)."""
    out = []
    try:
        for cls in list_classes(data_dir)[:4]:
            out += [str(p) for p in list_images(data_dir, cls)[:per_class]]
    except (OSError, ValueError):
        return []
    return out


def build_predict_tab(ctx: AppContext) -> dict:
    with gr.Row() as row:
        with gr.Column() as left:
            image = gr.Image(
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard", "webcam"],
                label="Photo: drop, paste or take one",
                elem_id="predict-image",
            )
        with gr.Column():
            picker = gr.Dropdown(label="Model", choices=[], visible=False, elem_id="model-picker")
            label = gr.Label(num_top_classes=3, label="Prediction", elem_id="predict-label")
            info = gr.Markdown(elem_id="predict-info")

    # The stable API endpoint (`gradio_client`: client.predict(handle_file(path), api_name="/predict")). It must be
    # the app's first event (fn_index 0): Gradio's page takes a "/predict" endpoint's parameters for fn_index 0's,
    # so any other event there, with more inputs, logs "Too many arguments provided for the endpoint" on each call.
    api_button = gr.Button(visible=False)
    api_button.click(
        visitors_may(friendly(functools.partial(predict_api, ctx))),
        [image],
        [label],
        preprocess=False,
        postprocess=False,  # predict_api returns gr.Label's own format, which can say "Not sure"
        api_name="predict",
        concurrency_id="predict",
        concurrency_limit=4,
    )
    with left:
        # Photos of the data set are shown only where everyone is an owner: visitors see none of its files.
        examples = example_photos(ctx.data_dir) if ctx.access.everyone_owner else []
        if examples:
            gr.Examples(examples=[[e] for e in examples], inputs=[image], label="Examples from the data set")
    with row:
        # a column beside the label: "Show where the model looked"
        build_explain_panel(
            ctx.models,
            image,
            picker,
            label,
            wrap=lambda fn: visitors_may(friendly(default_model_for_visitors(lambda: ctx.access)(fn))),
        )
    with gr.Accordion("Many photos at once", open=False):
        files = gr.File(file_count="multiple", file_types=["image"], label="Photos", elem_id="predict-files")
        with gr.Row():
            table = gr.Dataframe(label="Results", interactive=False, visible=False, scale=3, elem_id="predict-table")
            photos = gr.Gallery(
                label="Photos and their labels", columns=3, height=400, visible=False, scale=2, elem_id="predict-photos"
            )
        with gr.Row():
            note = gr.Markdown(elem_id="predict-note")
            download = gr.File(label="Results as CSV", interactive=False, elem_id="predict-csv")

    @visitors_may
    @default_model_for_visitors(lambda: ctx.access)
    def on_image(img, model_name):
        if payload_path(img) is None:  # removed by the user (see `image.clear`) or by us after a bad file: keep the message
            return gr.skip()
        shown, text, keep_photo = friendly(predict_view)(ctx, img, model_name)
        return {label: shown, info: text} | ({} if keep_photo else {image: None})

    image.change(
        on_image, [image, picker], [label, info, image], preprocess=False, api_visibility="private", concurrency_id="predict"
    )
    picker.change(
        on_image, [image, picker], [label, info, image], preprocess=False, api_visibility="private", concurrency_id="predict"
    )
    image.clear(visitors_may(lambda: (None, "")), None, [label, info], api_visibility="private")

    @visitors_may
    @default_model_for_visitors(lambda: ctx.access)
    def on_files(f, model_name):
        view = friendly(predict_many_view)(ctx, f, model_name)
        return {
            table: gr.Dataframe(value=view.table, visible=view.table is not None),
            photos: gr.Gallery(value=view.photos, visible=bool(view.photos)),
            download: view.csv,
            note: view.note,
        }

    files.change(
        on_files,
        [files, picker],
        [table, photos, download, note],
        preprocess=False,
        api_visibility="private",
        concurrency_id="predict",
    )
    return {"picker": picker, "image": image, "label": label, "info": info}


# --------------------------------------------------------------------------------------------- curate


# ---------------------------------------------------------------------------------------------- train


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


def build_train_tab(ctx: AppContext) -> dict:
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
    finished = gr.State(None)  # the name of the model `compare` is about
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
    shown_model = gr.State(None)  # the model the results box is about
    timer = gr.Timer(POLL_SECONDS, active=False)
    # Slower, while no job is watched: notices a training another visitor started after this page loaded.
    idle = gr.Timer(IDLE_POLL_SECONDS, active=False)
    picker = ctx.shared["picker"]
    watched = gr.State(None)  # the model dir of the job this page last saw running
    form = {"arch": arch, "pretrained": pretrained, "sizes": sizes, "epochs": epochs, "lr": lr, "bs": bs}
    form |= {"valid": valid, "model_name": model_name}

    def job_view(running: bool) -> dict:
        """What every handler shows of the current job: status, bar, epochs, loss, Cancel's state."""
        job = ctx.trainer.job()
        state, events = (job.state, list(job.events)) if job else (None, [])
        return {
            status: jobview.status_markdown(state, events, job and job.error, job and str(job.model_dir)),
            bar: jobview.progress_html(state, events),
            table: jobview.epoch_table(events),
            plot: jobview.loss_figure(events),
            cancel: gr.Button(interactive=running),
        }

    def results(name: str | None, running: bool) -> dict:
        """The results box of model `name` (the finished one, else the newest), labelled with its name."""
        shown = name or ctx.models.newest()
        lr_v, conf_v, per_v = results_view(ctx, shown)
        box = gr.Accordion(label=results_label(shown, running))
        return {results_box: box, lr_plot: lr_v, confusion: conf_v, per_class: per_v, shown_model: shown}

    def on_start(arch_v, pre_v, sizes_v, epochs_v, lr_v, bs_v, valid_v, name_v, shown):
        try:
            cfg = jobview.parse_settings(arch_v, pre_v, sizes_v, epochs_v, lr_v, bs_v, valid_v)
            job = ctx.trainer.start(cfg, (name_v or "").strip() or default_model_name(ctx.data_dir, ctx.models_dir))
        except OtterError as ex:
            return {message: f"⚠️ {escape_md(one_line(ex))}"}  # only a tick stops the timer (see on_tick)
        msg = f"Started training **{escape_md(job.model_dir.name)}** ({cfg.arch}, sizes {','.join(map(str, cfg.sizes))}, pretrained {'on' if cfg.pretrained else 'off'})."
        if job.model_dir.name in ctx.models.names():
            msg += " When it finishes it replaces the model of that name, which goes to the models trash; until then that model keeps answering."
        view = {message: msg, timer: gr.Timer(active=True), watched: str(job.model_dir), cancel: gr.Button(interactive=True)}
        if shown:  # the results below are the previous model's until this one is done
            view[results_box] = gr.Accordion(label=results_label(shown, running=True))
        return view

    start.click(
        friendly(on_start),
        [arch, pretrained, sizes, epochs, lr, bs, valid, model_name, shown_model],
        [message, timer, watched, cancel, results_box],
        api_visibility="private",
    )
    cancel.click(friendly(lambda: ctx.trainer.cancel()), None, [message], api_visibility="private")

    def on_tick(seen):
        job = ctx.trainer.job()
        if job is not None and job.running:
            return job_view(True) | {timer: gr.Timer(active=True), watched: str(job.model_dir)}
        # Finished (or nothing running): stop polling; show results, the comparison with the default (which
        # Predict keeps using) and a fresh name for the next model. Only a tick stops the timer, after showing
        # the end, and only if no job was started meanwhile (its Start may have re-armed the timer already).
        name = finished_name(ctx)
        again = ctx.trainer.running()
        view = job_view(again) | results(name, again)
        compare_v, use_v = comparison_view(ctx, name)
        view |= {compare: compare_v, use: use_v, finished: name, timer: gr.Timer(active=again), watched: None}
        if seen and not again:
            view[message] = ""  # "Started…" or "already running" would be stale next to "Done"
        if name:  # model pickers and the next name only change when a model was written
            view |= {
                picker: model_picker_update(ctx),
                ctx.shared["review_model"]: gr.Dropdown(choices=ctx.models.names(), value=name),
            }
            view |= {model_name: gr.Textbox(placeholder=name_hint(ctx))}
        return view

    tick_outputs = [status, bar, table, plot, cancel, results_box, lr_plot, confusion, per_class, compare, use, finished]
    tick_outputs += [message, shown_model]
    tick_outputs += [picker, ctx.shared["review_model"], model_name, timer, watched]
    timer.tick(friendly(on_tick), [watched], tick_outputs, api_visibility="private")

    def on_use(name):
        set_default(ctx.models_dir, name)
        done = (
            f"**{escape_md(name)}** is now the default model: Predict, the `/predict` API and `python -m otter predict` use it."
        )
        return done, gr.Button(visible=False), model_picker_update(ctx, name)

    use.click(friendly(on_use), [finished], [compare, use, picker], api_visibility="private")

    def on_load():
        job = ctx.trainer.job()
        running = job is not None and job.running
        name = finished_name(ctx)
        view = job_view(running) | results(name, running)
        compare_v, use_v = comparison_view(ctx, name)
        view |= {compare: compare_v, use: use_v, finished: name, model_name: gr.Textbox(placeholder=name_hint(ctx))}
        if running:
            # A page opened (or reloaded) during training shows that job's settings, not the form's defaults;
            # a load may start the timer, never stop it (it may finish after a Start on the same page).
            values = jobview.form_values(job.cfg, job.model_dir.name)
            view |= {form[key]: value for key, value in values.items()} | {timer: gr.Timer(active=True)}
        return view | {idle: gr.Timer(active=True)}  # an owner's page (a visitor's load is refused)

    def on_idle(seen):
        """A job this page does not show yet (started elsewhere): show it as a reload would, and follow it."""
        job = ctx.trainer.job()
        if job is None or not job.running or seen == str(job.model_dir):
            return gr.skip()
        return on_load() | {watched: str(job.model_dir)}

    def on_zip(name):
        if not name:
            raise gr.Error("No model to download yet: train one first.", print_exception=False)
        path = zip_model(ctx.models_dir / name, Path(tempfile.gettempdir()) / "otter-model-zips")
        return gr.File(value=str(path), visible=True)

    zip_btn.click(friendly(on_zip), [shown_model], [zip_file], api_visibility="private")

    outputs = [status, bar, table, plot, cancel, results_box, lr_plot, confusion, per_class, compare, use, finished]
    outputs += [shown_model, timer, *form.values()]
    idle.tick(friendly(on_idle), [watched], [*outputs, watched, idle], api_visibility="private")
    return {"refresh": (friendly(on_load), None, [*outputs, idle])}


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


# ------------------------------------------------------------------------------------------------ app


def build_app(
    data_dir: os.PathLike | str | None = None,
    models_dir: os.PathLike | str | None = None,
    shipped_models: os.PathLike | str | None = None,
    access: Access | None = None,
) -> gr.Blocks:
    """The whole app; folders default to $OTTER_DATA_DIR / $OTTER_MODELS_DIR (see `otter.config`). When the
    models folder has no model yet, the models in `shipped_models` are copied into it (`seed_models`). `access`
    says who is an owner (default: from the environment and where `launch` listens, `otter.app.owners`)."""
    config.quiet_dependency_warnings()
    data = config.data_dir(data_dir)
    models = config.models_dir(models_dir)
    data.mkdir(parents=True, exist_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    try:
        recover(models)  # a model swap a crash cut short (at start-up only: never on the prediction path)
        if shipped_models is not None:
            seed_models(models, shipped_models)
    except OSError as ex:  # a read-only or full models folder: the app still starts, Predict points to Train
        print(f"otter: could not prepare the models folder {models}: {ex}", file=sys.stderr)
    ctx = AppContext(data, models, shared_model_service(models), TrainService(data, models))
    if access is not None:
        ctx.access = access
    owner = ctx.access.everyone_owner  # what the page shows before it knows who is looking
    # Uploads and results Gradio keeps in its cache (visitors' uploads too) are deleted after a day.
    with gr.Blocks(title="Otter Classifier", delete_cache=(3600, 24 * 3600)) as demo:
        with gr.Row():
            gr.Markdown("# Otter Classifier\nCurate an image data set, train a classifier, and use it.")
            if ctx.access.mode == "space":
                gr.LoginButton(scale=0, elem_id="login")
        with gr.Tabs():
            with gr.Tab("Predict", id="predict"):
                ctx.shared.update(build_predict_tab(ctx))
            with gr.Tab("Curate", id="curate"):
                curate_notice = gr.Markdown(ctx.access.refusal(), visible=not owner, elem_id="curate-visitor")
                with gr.Column(visible=owner) as curate_box:
                    ctx.shared.update(curate_parts := build_curate_tab(ctx))
            with gr.Tab("Train", id="train"):
                train_notice = gr.Markdown(ctx.access.refusal(), visible=not owner, elem_id="train-visitor")
                with gr.Column(visible=owner) as train_box:
                    train_parts = build_train_tab(ctx)
                    models_panel = build_models_panel(ctx)
        picker = ctx.shared["picker"]

        @visitors_may
        def picker_view(request: gr.Request):
            """Every model for an owner; a visitor predicts with the default model, so it has no picker."""
            return model_picker_update(ctx, None) if ctx.access.is_owner(request) else gr.Dropdown(visible=False)

        demo.load(picker_view, None, [picker], api_visibility="private")

        @visitors_may
        def role_view(request: gr.Request):
            """The owner's tools for an owner; for a visitor, the line that says how to get them."""
            is_owner = ctx.access.is_owner(request)
            notice = gr.Markdown(ctx.access.refusal(), visible=not is_owner)
            return notice, gr.Column(visible=is_owner), notice, gr.Column(visible=is_owner)

        demo.load(role_view, None, [curate_notice, curate_box, train_notice, train_box], api_visibility="private")
        demo.load(friendly(lambda: models_view(ctx, models_panel)), None, models_panel.outputs, api_visibility="private")
        for fn, inputs, outputs in (curate_parts["refresh"], train_parts["refresh"]):
            demo.load(fn, inputs, outputs, api_visibility="private")
    # Every event not marked `visitors_may` above is an owner's: refused for visitors (otter.app.owners).
    guard_events(demo, lambda: ctx.access)
    if not owner:
        no_data_set_in_page(demo)
    demo.otter_context = ctx  # for tests and extensions
    demo.otter_access_given = access is not None
    return demo


def _warm_up(ctx: AppContext) -> None:
    """Load the default model before the first visitor asks. No model yet is normal; a model that fails to load
    is said once in the server's log (Predict says it to the visitor when asked)."""
    try:
        ctx.models.predictor()
    except NoModel:
        pass
    except Exception as ex:  # noqa: BLE001 - a warm-up must never stop the server from starting
        print(f"warning: the default model could not be loaded at start-up: {describe(ex)}", file=sys.stderr)


def launch(
    demo: gr.Blocks | None = None,
    max_file_size: int | str = config.MAX_FILE_BYTES,
    max_queue: int = config.MAX_QUEUE,
    **kwargs,
) -> None:
    """Start the server (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured by Gradio itself). Uploads larger
    than `max_file_size` are refused by Gradio before they reach the app, and so are requests beyond `max_queue`
    waiting ones. Who is an owner is decided here unless `build_app` was given it (`otter.app.owners`)."""
    demo = demo or build_app()
    ctx: AppContext = demo.otter_context
    if not getattr(demo, "otter_access_given", False):
        ctx.access = access_from_env(server_name=kwargs.get("server_name"), share=bool(kwargs.get("share")))
    if ctx.access.logins:
        kwargs["auth"] = list(ctx.access.logins)
    print(ctx.access.startup_line(), flush=True)
    print(config.storage_line(ctx.data_dir, ctx.models_dir), flush=True)
    # Load the default model while the server starts, so the first photo does not wait for it.
    threading.Thread(target=_warm_up, args=(ctx,), daemon=True).start()
    # The data folder is an allowed path only so that views may show its images (Gradio copies them into its
    # cache); RefuseFolders keeps Gradio's file route from serving any file of it, or of the models folder.
    folders = [ctx.data_dir.resolve(), ctx.models_dir.resolve()]
    app_kwargs = kwargs.pop("app_kwargs", None) or {}
    app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(RefuseFolders, folders=folders)]
    demo.queue(default_concurrency_limit=4, max_size=max_queue).launch(
        max_file_size=max_file_size,
        allowed_paths=[str(ctx.data_dir.resolve())],
        app_kwargs=app_kwargs,
        **kwargs,
    )
