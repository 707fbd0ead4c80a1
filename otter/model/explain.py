"""Where the model looked: Grad-CAM on the last convolutional block, as a heat map at the photo's size and an overlay.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the last convolutional feature map by the mean
gradient of the chosen class's score with respect to it; the positive part of that weighted sum shows
which regions raised the score. Our models are fastai's `Sequential(body, head)`, so the body's output
is exactly that feature map: running body and head separately gives the same activations and gradients
as a forward hook on `model[0]` would, without registering anything on the model that `predict` calls
from other threads at the same time. Cost: one forward pass plus a backward pass through the small head.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.images import ImageInput, InvalidImage, load_image
from ..data.safepath import inside
from ..errors import BadInput
from .backbones import BackboneError, body_and_head
from .preprocess import preprocess

# How overlays look: a matplotlib colour map (cold blue to hot red) blended over the photo.
COLORMAP = "jet"
ALPHA = 0.45


class ExplainError(BadInput):
    """The model or the requested class cannot be explained, or the overlay cannot be written; the message says why."""


@dataclass
class Explanation:
    heatmap: np.ndarray  # float32 (H, W) in [0, 1], same size as the (EXIF-rotated) photo; 1 = looked here most
    overlay: Image.Image  # RGB, the photo with the heat map blended over it
    target: str  # the class the heat map explains
    probabilities: dict[str, float]  # {class: probability}, as `Predictor.predict` returns them


def _target_index(target: str | int, classes: list[str]) -> int:
    if isinstance(target, str):
        if target not in classes:
            raise ExplainError(f"unknown class {target!r}; the model knows {', '.join(classes)}")
        return classes.index(target)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool) and 0 <= int(target) < len(classes):
        return int(target)
    raise ExplainError(f"class {target!r} is out of range; give a class name ({', '.join(classes)}) or 0..{len(classes) - 1}")


def grad_cam(
    model: torch.nn.Module, x: torch.Tensor, target: int | None = None, n_classes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Grad-CAM of one normalised input `x` (1, 3, S, S): (cam (h, w) >= 0 on the feature grid, logits (1, n), target).

    `target=None` explains the highest-scoring of the first `n_classes` outputs (the classes; a model may have
    extra outputs after them). The model is only read, never changed (eval mode, no hooks)."""
    try:
        body, head = body_and_head(model)
    except BackboneError as ex:
        raise ExplainError(f"{ex}, so it has no last convolutional block to explain") from ex
    # inference_mode(False) so that this also works when a caller has switched inference mode on.
    with torch.inference_mode(False), torch.enable_grad():
        with torch.no_grad():
            features = body(x)
        # The gradient is only needed from the class score back to the feature map: through the head alone.
        features = features.detach().requires_grad_(True)
        logits = head(features)
        index = int(logits[0, :n_classes].argmax()) if target is None else int(target)
        (grad,) = torch.autograd.grad(logits[0, index], features)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features.detach()).sum(dim=1))[0]
    return cam, logits.detach(), index


def heatmap_at(cam: torch.Tensor, width: int, height: int) -> np.ndarray:
    """Scale a Grad-CAM grid to [0, 1] (0 = no positive evidence) and stretch it over the whole photo.

    The model saw the photo squished to a square, so the grid maps onto the full frame, not a centre crop."""
    cam = cam.float().cpu()
    top = float(cam.max())
    cam = cam / top if top > 0 else torch.zeros_like(cam)
    up = F.interpolate(cam[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return up.clamp_(0.0, 1.0).numpy().astype(np.float32, copy=False)


@functools.cache
def _colour_table(name: str) -> np.ndarray:
    """A 256-entry RGB lookup table: colouring through it needs 3 bytes a pixel, not matplotlib's 32."""
    import matplotlib

    return (matplotlib.colormaps[name](np.arange(256))[:, :3] * 255).round().astype(np.uint8)


def overlay_image(photo: Image.Image, heatmap: np.ndarray, colormap: str = COLORMAP, alpha: float = ALPHA) -> Image.Image:
    """The photo with `heatmap` (float (H, W) in [0, 1]) coloured and blended over it."""
    levels = np.rint(np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8)
    coloured = Image.fromarray(_colour_table(colormap)[levels])
    return Image.blend(photo.convert("RGB"), coloured, alpha)


def explain(predictor, image: ImageInput, target: str | int | None = None) -> Explanation:
    """Grad-CAM for one image with a `Predictor`: for `target` (a class name or index), else the predicted class.

    Raises `InvalidImage` for unusable images and `ExplainError` for an unknown class."""
    photo = load_image(image)
    x = preprocess(photo, predictor.size, predictor.mean, predictor.std)[None]
    model = predictor.model
    param = next(model.parameters(), None)
    x = x.to(predictor.device, dtype=param.dtype if param is not None else torch.float32)
    # No target: the top class. Temperature scaling never changes which class that is, so the raw logits decide.
    index = None if target is None else _target_index(target, predictor.classes)
    cam, logits, index = grad_cam(model, x, index, n_classes=len(predictor.classes))
    probs = predictor.probabilities(logits.float().cpu())[0]
    heatmap = heatmap_at(cam, *photo.size)
    return Explanation(
        heatmap=heatmap,
        overlay=overlay_image(photo, heatmap),
        target=predictor.classes[index],
        probabilities=dict(zip(predictor.classes, map(float, probs.tolist()))),
    )


def overlay_name(image: os.PathLike | str, taken: set[str]) -> str:
    """A PNG file name derived from an image's file name ('dir/photo 1.jpg' -> 'photo_1.png'), unique within `taken`."""
    stem = re.sub(r"[^\w.-]+", "_", Path(str(image)).stem).strip("._")[:100] or "image"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return name


def write_overlays(predictor, images: list, out_dir: os.PathLike | str) -> list[Path | InvalidImage]:
    """Explain each image (its predicted class) and write the overlay as OUT_DIR/<image name>.png.

    Returns the written path, or the image's `InvalidImage`, per image. `out_dir` is created; nothing is written
    outside it (a name whose real path leaves it, e.g. through a symlink, raises `UnsafePath`). A folder that
    cannot be created or written raises `ExplainError`."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise ExplainError(f"cannot create the overlay folder {out_dir} ({ex.strerror or ex})") from ex
    taken: set[str] = set()
    results: list[Path | InvalidImage] = []
    for image in images:
        try:
            explanation = explain(predictor, image)
        except InvalidImage as ex:
            results.append(ex)
            continue
        dest = inside(out_dir, overlay_name(image, taken), what="overlay file name")
        # Write beside it and rename: a crash never leaves half a PNG, and an existing symlink is replaced, not followed.
        tmp = out_dir / f".{dest.name}.{os.getpid()}.tmp"
        try:
            explanation.overlay.save(tmp, format="PNG")
            os.replace(tmp, dest)
        except OSError as ex:
            raise ExplainError(f"cannot write {dest} ({ex.strerror or ex})") from ex
        finally:
            tmp.unlink(missing_ok=True)
        results.append(dest)
    return results
