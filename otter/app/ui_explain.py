"""Show where the model looked: a Grad-CAM overlay beside the label in Predict (top class or another one), and for
the clicked hard image in Curate › Review.

`explain_view` holds the logic and returns plain values (tested without Gradio); `build_explain_panel` only
declares the widgets and wires them. While the toggle is off, nothing is computed: the plain prediction
path is untouched and the handler returns at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr
from PIL import Image

from ..data.images import InvalidImage
from ..data.safepath import inside
from ..errors import escape_md
from ..model.device import gpu_task
from ..model.explain import Explanation
from .service import ModelService, NoModel, shared_model_service

TOGGLE_LABEL = "Show where the model looked"
MAX_SIDE = 768  # the overlay sent to the browser; the heat map itself is computed at the photo's full size
LEGEND = "red: what raised the score for this class most; blue: little or nothing"


@dataclass
class ExplainResult:
    overlay: Image.Image | None = None
    classes: list[str] = field(default_factory=list)
    target: str | None = None
    note: str = ""


@gpu_task
def explain_on_device(models_dir: str, path: str, model_name: str | None, target: str | None) -> tuple[list[str], Explanation]:
    """(the model's classes, the explanation); on ZeroGPU Spaces this call gets a GPU slot, like predictions do.
    Plain arguments only: ZeroGPU may run it in another process."""
    predictor = shared_model_service(models_dir).predictor(model_name)
    return list(predictor.classes), predictor.explain(path, target if target in predictor.classes else None)


def explain_view(
    models: ModelService,
    image_path: str | None,
    model_name: str | None,
    target: str | None = None,
    say_problems: bool = True,
) -> ExplainResult:
    """The overlay for `target` (None, or a class the model does not know: the predicted class), a one-line note,
    and the classes to choose from. Bad photos and a missing model become the note, never an exception; with
    `say_problems=False` (in Predict, whose answer already says it) no note at all."""
    if not image_path:
        return ExplainResult()
    try:
        classes, explanation = explain_on_device(str(models.models_dir), image_path, model_name, target)
    except (InvalidImage, NoModel) as ex:
        return ExplainResult(note=f"⚠️ {str(ex).splitlines()[0]}" if say_problems else "")
    overlay = explanation.overlay
    overlay.thumbnail((MAX_SIDE, MAX_SIDE))
    prob = explanation.probabilities[explanation.target]
    note = f"Where the model looked for **{escape_md(explanation.target)}** ({prob:.0%}): {LEGEND}."
    return ExplainResult(overlay, classes, explanation.target, note)


def _panel(prefix: str, toggle_label: str = TOGGLE_LABEL) -> tuple[gr.Checkbox, gr.Image, gr.Radio, gr.Markdown]:
    show = gr.Checkbox(value=False, label=toggle_label, elem_id=f"{prefix}-toggle")
    overlay = gr.Image(label="Where the model looked", type="pil", interactive=False, visible=False, elem_id=f"{prefix}-image")
    which = gr.Radio(choices=[], label="Explain the class", visible=False, elem_id=f"{prefix}-class")
    note = gr.Markdown(elem_id=f"{prefix}-note")
    return show, overlay, which, note


def _show(res: ExplainResult) -> tuple:
    return (
        gr.Image(value=res.overlay, visible=res.overlay is not None),
        gr.Radio(choices=res.classes, value=res.target, visible=len(res.classes) > 1),
        res.note,
    )


def _hidden() -> tuple:
    return gr.Image(value=None, visible=False), gr.Radio(visible=False), ""


# Explanations share two workers: a burst of clicks cannot take every worker from plain predictions.
EVENTS = {"api_visibility": "private", "concurrency_id": "explain", "concurrency_limit": 2}


def build_explain_panel(
    models: ModelService, image: gr.Image, picker: gr.Dropdown, label: gr.Label, wrap: Callable = lambda f: f
) -> dict:
    """A column with the toggle, the overlay and a class choice; `image`, `picker` and `label` (the answer) are the
    Predict tab's own. `wrap` takes handlers `fn(photo, model_name, ...)`."""
    with gr.Column():
        show, overlay, which, note = _panel("explain")

    def update(payload, model_name, on, target=None):
        if not on:  # toggle off: compute nothing, hide the panel
            return _hidden()
        path = payload.get("path") if isinstance(payload, dict) else payload
        # A bad photo or no model: Predict's answer beside this panel says so, once.
        return _show(explain_view(models, path, model_name, target, say_problems=False))

    outputs = [overlay, which, note]
    # A new photo, another model or the toggle: explain the top class. Choosing a class (`input` fires only on a
    # user's click, not when `update` sets the choice): explain that one.
    # The toggle by the user only (`input`): a click on the label ticks it itself, explaining the class clicked.
    for event in (image.change, picker.change, show.input):
        event(wrap(update), [image, picker, show], outputs, preprocess=False, **EVENTS)
    which.input(wrap(update), [image, picker, show, which], outputs, preprocess=False, **EVENTS)

    @label.select(inputs=[image, picker], outputs=[*outputs, show], preprocess=False, **EVENTS)
    @wrap
    def explain_clicked(payload, model_name, evt: gr.SelectData):
        """A class clicked in the answer (gr.Label): where the model looked for that class, the toggle ticked."""
        if not isinstance(evt.value, str):
            return gr.skip()
        return (*update(payload, model_name, True, evt.value), True)

    return {"explain_toggle": show, "explain_image": overlay, "explain_class": which}


def review_image_path(data_dir: os.PathLike | str, rels: list[str], index: int | None) -> str | None:
    """The file of the review gallery's item `index` (`class/name` in `rels`), checked to be inside the data folder."""
    if index is None or not 0 <= index < len(rels) or rels[index].count("/") != 1:
        return None
    return str(inside(data_dir, *rels[index].split("/"), what="image"))


def build_review_explain(
    models: ModelService, data_dir: os.PathLike | str, model: gr.Dropdown, wrap: Callable = lambda f: f
) -> Callable[[gr.Gallery, gr.State], None]:
    """Curate › Review: the same panel for the image last clicked in the review gallery, with the review's model.

    Declares the widgets where it is called; returns `connect(gallery, shown)` to call once the gallery's list
    of `class/name` items (`shown`) exists."""
    show, overlay, which, note = _panel("review-explain", f"{TOGGLE_LABEL} (click an image)")
    picked = gr.State(None)  # the path of the image last clicked

    def update(path, model_name, on, target=None):
        if not on:
            return _hidden()
        if path is None:
            return gr.Image(visible=False), gr.Radio(visible=False), "Click an image to see where the model looked."
        return _show(explain_view(models, path, model_name, target))

    outputs = [overlay, which, note]

    def connect(gallery: gr.Gallery, shown: gr.State) -> None:
        def on_select(evt: gr.SelectData, rels, model_name, on):
            path = review_image_path(data_dir, rels, evt.index)
            return (*update(path, model_name, on), path)

        gallery.select(wrap(on_select), [shown, model, show], [*outputs, picked], **EVENTS)
        show.change(wrap(update), [picked, model, show], outputs, **EVENTS)
        which.input(wrap(update), [picked, model, show, which], outputs, **EVENTS)

    return connect
