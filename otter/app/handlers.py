"""What every panel of the app shares: the app's context, the wrapper that turns a failure into one line, and the
path of an uploaded file, Predict's model picker. The panels (`ui_predict`, `ui_curate`, `ui_collect`, ...) import
these from here (and the Curate sub-tabs what their galleries share from `ui_gallery`), never from each other's
builders, so the app's files import one way: ui -> ui_curate -> the panels -> handlers."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from ..errors import describe
from ..progress import Event
from .owners import Access, access_from_env

if TYPE_CHECKING:
    from .service import ModelService, TrainService

POLL_SECONDS = 1.0
IDLE_POLL_SECONDS = 5.0  # an owner's Train tab looks for a training started elsewhere


@dataclass
class AppContext:
    data_dir: Path
    models_dir: Path
    models: ModelService
    trainer: TrainService
    # Components that one tab updates in another (e.g. Train refreshes Predict's model picker).
    shared: dict = field(default_factory=dict)
    # Who is an owner (otter.app.owners): read by the guard of every event at call time.
    access: Access = field(default_factory=access_from_env)


def friendly(fn: Callable) -> Callable:
    """A failure becomes one line in the UI (and for API clients), never a traceback in the browser: an
    `OtterError`'s own message; anything else is logged with its traceback on the server and shown as
    "internal error (its type), see the log" (`otter.errors.describe`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as ex:
            # Gradio shows the message as (sanitised) HTML: a name in it must read as typed, not as markup.
            raise gr.Error(html.escape(describe(ex), quote=False), print_exception=False) from ex

    return wrapper


def payload_path(payload) -> str | None:
    """The local file of an image/file payload (events run with preprocess=False, so we decode it ourselves:
    our `load_image` gives the clear message for broken files, where Gradio's would give a bare error)."""
    if payload is None:
        return None
    if isinstance(payload, dict):
        return payload.get("path")
    return str(payload)


def model_picker_update(ctx: AppContext, value: str | None = None) -> gr.Dropdown:
    """Predict's model picker: every model, `value` selected, else the default model (shown when there are several)."""
    choices = ctx.models.choices()
    names = [n for _, n in choices]
    if value not in names:
        value = ctx.models.default()
    return gr.Dropdown(choices=choices, value=value, visible=len(choices) > 1)


def download_progress(progress: gr.Progress) -> Callable[[Event], None]:
    """Downloads' "download" events as Gradio's progress bar (the Curate and Web search tabs share it)."""
    progress(0, desc="Starting downloads")

    def report(e: Event) -> None:
        progress((e.done, e.total), desc=f"{e.done}/{e.total} fetched", unit="images")

    return report
