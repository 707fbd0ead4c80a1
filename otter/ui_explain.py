"""Predict › "Show where the model looked": a Grad-CAM overlay beside the label, for the top class or another one.

`explain_view` holds the logic and returns plain values (tested without Gradio); `build_explain_panel` only
declares the widgets and wires them. While the toggle is off, nothing is computed: the plain prediction
path is untouched and the handler returns at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr
from PIL import Image

from .images import InvalidImage
from .service import ModelService, NoModel

TOGGLE_LABEL = "Show where the model looked"
MAX_SIDE = 768  # the overlay sent to the browser; the heat map itself is computed at the photo's full size
LEGEND = "red: what raised the score for this class most; blue: little or nothing"


@dataclass
class ExplainResult:
    overlay: Image.Image | None = None
    classes: list[str] = field(default_factory=list)
    target: str | None = None
    note: str = ""


def explain_view(
    models: ModelService, image_path: str | None, model_name: str | None, target: str | None = None
) -> ExplainResult:
    """The overlay for `target` (None, or a class the model does not know: the predicted class), a one-line note,
    and the classes to choose from. Bad photos and a missing model become the note, never an exception."""
    if not image_path:
        return ExplainResult()
    try:
        predictor = models.predictor(model_name)
        explanation = predictor.explain(image_path, target if target in predictor.classes else None)
    except (InvalidImage, NoModel) as ex:
        return ExplainResult(note=f"⚠️ {str(ex).splitlines()[0]}")
    overlay = explanation.overlay
    overlay.thumbnail((MAX_SIDE, MAX_SIDE))
    prob = explanation.probabilities[explanation.target]
    note = f"Where the model looked for **{explanation.target}** ({prob:.0%}): {LEGEND}."
    return ExplainResult(overlay, list(predictor.classes), explanation.target, note)


def build_explain_panel(models: ModelService, image: gr.Image, picker: gr.Dropdown, wrap: Callable = lambda f: f) -> dict:
    """A column with the toggle, the overlay and a class choice; `image` and `picker` are the Predict tab's own."""
    with gr.Column():
        show = gr.Checkbox(value=False, label=TOGGLE_LABEL, elem_id="explain-toggle")
        overlay = gr.Image(label="Where the model looked", type="pil", interactive=False, visible=False, elem_id="explain-image")
        which = gr.Radio(choices=[], label="Explain the class", visible=False, elem_id="explain-class")
        note = gr.Markdown(elem_id="explain-note")

    def update(payload, model_name, on, target=None):
        if not on:  # toggle off: compute nothing, hide the panel
            return gr.Image(value=None, visible=False), gr.Radio(visible=False), ""
        path = payload.get("path") if isinstance(payload, dict) else payload
        res = explain_view(models, path, model_name, target)
        return (
            gr.Image(value=res.overlay, visible=res.overlay is not None),
            gr.Radio(choices=res.classes, value=res.target, visible=len(res.classes) > 1),
            res.note,
        )

    outputs = [overlay, which, note]
    common = {"preprocess": False, "api_visibility": "private", "concurrency_id": "explain", "concurrency_limit": 2}
    # A new photo, another model or the toggle: explain the top class. Choosing a class (`input` fires only on a
    # user's click, not when `update` sets the choice): explain that one.
    for event in (image.change, picker.change, show.change):
        event(wrap(update), [image, picker, show], outputs, **common)
    which.input(wrap(update), [image, picker, show, which], outputs, **common)
    return {"explain_toggle": show, "explain_image": overlay, "explain_class": which}
