"""The Gradio app: Predict, Curate and Train tabs (`ui_predict`, `ui_curate`, `ui_train`). A thin declaration: every handler calls into `otter.app.service`,
`otter.app.curate` and `otter.app.jobview`, which hold the logic and are tested without Gradio.

Adding to the app (other features plug in here with small edits):
- a sub-tab of Curate: write `build_xxx_tab(ctx, wrap=friendly)` in its own `ui_xxx.py` (its parts in a small
  dataclass, each listener right above its handler, as `ui_trash.py` does) and call it inside
  `otter.app.ui_curate.build_curate_tab`'s `with gr.Tabs():` block, where the comment "more Curate sub-tabs go
  here" is; what panels share (`AppContext`, `friendly`, `payload_path`) is in `otter.app.handlers`;
- something in Predict or Train: see `otter.app.ui_predict` and `otter.app.ui_train` (each tab has its module;
  the Train tab's Models panel is `otter.app.ui_models`);
- every event is an owner's (`otter.app.owners.guard_events`, applied once in `build_app`) unless its function
  is marked `visitors_may`, which only something that neither writes nor reads the data set may be; then add
  it to tests/test_owners.py's VISITORS_MAY.
"""

from __future__ import annotations

import os
import sys
import threading

import gradio as gr
from starlette.middleware import Middleware

from .. import config
from ..errors import describe
from ..model.io import recover, seed_models
from .handlers import AppContext, friendly, model_picker_update
from .owners import Access, RefuseFolders, access_from_env, guard_events, no_data_set_in_page, visitors_may
from .service import NoModel, TrainService, shared_model_service
from .ui_curate import build_curate_tab
from .ui_models import build_models_panel
from .ui_models import view as models_view
from .ui_predict import build_predict_tab, predict_api, predict_many_view, predict_view
from .ui_train import build_train_tab

# What scripts and tests import from here (the tabs live in their own modules: ui_predict, ui_curate, ui_train).
__all__ = ["AppContext", "build_app", "friendly", "launch", "predict_api", "predict_many_view", "predict_view"]

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


_CAPTIONED = ("curate-gallery", "curate-similar", "trash-gallery", "review-gallery", "audit-gallery", "predict-photos")
_MULTI_SELECT = ("curate-gallery", "curate-similar", "trash-gallery")
APP_CSS = (
    # A caption wraps inside its thumbnail rather than end in "…": the similarity, the prediction and the
    # suggestion are at the end of theirs.
    ", ".join(f"#{g} .caption-label" for g in _CAPTIONED)
    + " { white-space: normal; overflow-wrap: anywhere; max-width: calc(100% - 2 * var(--block-label-margin)); }\n"
    # Where many images are selected, `curate.selection_marks` outlines each; Gradio's ring marks only the last
    # click, and stayed after the selection was cleared.
    + ", ".join(f"#{g} .thumbnail-item.selected" for g in _MULTI_SELECT)
    + " { --ring-color: transparent; border-color: var(--border-color-primary); }\n"
)


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
    kwargs.setdefault("css", APP_CSS)
    demo.queue(default_concurrency_limit=4, max_size=max_queue).launch(
        max_file_size=max_file_size,
        allowed_paths=[str(ctx.data_dir.resolve())],
        app_kwargs=app_kwargs,
        **kwargs,
    )
