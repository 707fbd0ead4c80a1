"""The Predict tab: one photo (its answer, and where the model looked), many photos at once, and the stable
`/predict` API. `predict_view`, `predict_api` and `predict_many_view` hold the logic and return plain values
(tested without a browser); `build_predict_tab` declares the widgets, each listener right above its handler.

Something new in Predict (an explanation image, a "not sure" note): add outputs in `build_predict_tab` and extend
`predict_view` (events go after the "/predict" API's, which must stay the app's first).
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from .. import config
from ..data.dataset import list_classes, list_images
from ..data.images import InvalidImage
from ..errors import escape_md, one_line
from ..model.device import gpu_task
from .handlers import AppContext, friendly, payload_path
from .owners import default_model_for_visitors, visitors_may
from .service import NO_MODEL, NOT_SURE_HEADING, NoModel, Prediction, shared_model_service, write_csv
from .ui_explain import build_explain_panel

PREDICT = {"preprocess": False, "api_visibility": "private", "concurrency_id": "predict"}


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
    """Declare the tab inside the current `gr.Tab`; returns the parts other tabs use: "picker" (the model picker),
    "image", "label" and "info"."""
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
    for_visitors = default_model_for_visitors(lambda: ctx.access)
    with row:
        # a column beside the label: "Show where the model looked"
        build_explain_panel(ctx.models, image, picker, label, wrap=lambda fn: visitors_may(friendly(for_visitors(fn))))

    @gr.on([image.change, picker.change], inputs=[image, picker], outputs=[label, info, image], **PREDICT)
    @visitors_may
    @for_visitors
    def on_image(img, model_name):
        if payload_path(img) is None:  # removed by the user (see `image.clear`) or by us after a bad file: keep the message
            return gr.skip()
        shown, text, keep_photo = friendly(predict_view)(ctx, img, model_name)
        return {label: shown, info: text} | ({} if keep_photo else {image: None})

    image.clear(visitors_may(lambda: (None, "")), None, [label, info], api_visibility="private")
    build_many_photos(ctx, picker, for_visitors)
    return {"picker": picker, "image": image, "label": label, "info": info}


def build_many_photos(ctx: AppContext, picker: gr.Dropdown, for_visitors) -> None:
    """The "Many photos at once" accordion: photos in, a table, the photos captioned with their labels, a CSV."""
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

    @files.change(inputs=[files, picker], outputs=[table, photos, download, note], **PREDICT)
    @visitors_may
    @for_visitors
    def on_files(f, model_name):
        view = friendly(predict_many_view)(ctx, f, model_name)
        return {
            table: gr.Dataframe(value=view.table, visible=view.table is not None),
            photos: gr.Gallery(value=view.photos, visible=bool(view.photos)),
            download: view.csv,
            note: view.note,
        }
