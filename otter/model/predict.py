"""Fast prediction with a saved model: decode, resize and normalise in tensors, one forward pass, no DataLoader."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from ..data.images import ImageInput, InvalidImage, load_image
from .device import PRECISIONS, pick_device, pick_precision
from .io import load_model
from .ood import Detector, detector_from_meta, features_and_logits
from .preprocess import preprocess


def _is_batchnorm(m: torch.nn.Module) -> bool:
    """BatchNorm2d, or timm's BatchNormAct2d (a BatchNorm followed by its activation), matched by name so that
    serving a ResNet never imports timm (seconds at start-up)."""
    return type(m) is torch.nn.BatchNorm2d or (isinstance(m, torch.nn.BatchNorm2d) and type(m).__name__ == "BatchNormAct2d")


def _foldable(conv, bn) -> bool:
    return (
        isinstance(conv, torch.nn.Conv2d)  # timm's TF-padding Conv2dSame too: folding only changes weight and bias
        and _is_batchnorm(bn)
        and bn.track_running_stats
        and bn.num_features == conv.out_channels
    )


def _what_remains(bn: torch.nn.Module) -> torch.nn.Module:
    """What is left of a BatchNorm once folded into its convolution: nothing, or timm's dropout and activation."""
    if type(bn) is torch.nn.BatchNorm2d:
        return torch.nn.Identity()
    return torch.nn.Sequential(bn.drop, bn.act)


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each BatchNorm that directly follows a convolution into that convolution's weights (eval-mode
    arithmetic, same outputs to float rounding), in place: pairs inside a `Sequential` (fastai's ConvLayer,
    torchvision's stem and downsample), torchvision's `convN`/`bnN` block attributes, and timm's
    convolution + BatchNormAct2d pairs (EfficientNet's `conv_stem`/`bn1`, `conv_pw`/`bn1`, …, registered one
    after the other). Written by hand because torch's own folding (torch.fx `fuse`) traces the model, and fx
    tracing patches `nn.Module.__call__` process-wide while it runs, which broke a training job in another thread."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for parent in list(model.modules()):
        kids = parent._modules
        names = list(kids)
        if isinstance(parent, torch.nn.Sequential):
            pairs = list(zip(names, names[1:]))
        else:
            pairs = [(f"conv{i}", f"bn{i}") for i in range(1, 4) if f"conv{i}" in kids and f"bn{i}" in kids]
            pairs += [
                (a, b) for a, b in zip(names, names[1:]) if _is_batchnorm(kids[b]) and type(kids[b]) is not torch.nn.BatchNorm2d
            ]
        for a, b in pairs:
            if _foldable(kids[a], kids[b]):
                kids[a] = fuse_conv_bn_eval(kids[a].eval(), kids[b].eval())
                kids[b] = _what_remains(kids[b])
    return model


def optimize_for_inference(model: torch.nn.Module, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A copy of `model` for inference: eval mode, BatchNorm folded into the convolutions, channels-last
    weights (faster on CPU; same outputs to ~1e-6) in `dtype`. The model passed in is not changed (a learner
    may keep training it)."""
    model = copy.deepcopy(model).eval()
    return fold_batchnorm(model).to(dtype=dtype, memory_format=torch.channels_last)


def as_input(batch: torch.Tensor, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return batch.to(device, dtype).contiguous(memory_format=torch.channels_last)


class Predictor:
    """A loaded model. `predict(image)` -> {class: probability}; safe to call from several threads."""

    def __init__(self, model: torch.nn.Module, meta: dict, path: str | None = None, precision: str | None = None):
        self.meta = meta
        self.path = path
        self.classes: list[str] = list(meta["classes"])
        self.size = int(meta["input_size"])
        norm = meta.get("normalize", {})
        self.mean = torch.tensor(norm.get("mean", (0.485, 0.456, 0.406))).view(3, 1, 1)
        self.std = torch.tensor(norm.get("std", (0.229, 0.224, 0.225))).view(3, 1, 1)
        self.temperature = float(meta.get("calibration", {}).get("temperature", 1.0))
        self.device = pick_device()
        self.precision = pick_precision(self.device, precision)  # "fp32" or "bf16"; see pick_precision
        self.dtype = PRECISIONS[self.precision]
        self.model = optimize_for_inference(model, self.dtype).to(self.device)
        self.detector: Detector | None = detector_from_meta(meta, path)  # "not sure" test; None: every image is known

    @classmethod
    def load(cls, model_dir: os.PathLike | str, precision: str | None = None) -> Predictor:
        model, meta = load_model(model_dir)
        return cls(model, meta, str(model_dir), precision)

    @property
    def name(self) -> str:
        return self.meta.get("name") or Path(self.path or "model").name

    def tensor(self, image: ImageInput) -> torch.Tensor:
        """The normalised (3, size, size) input for one image; raises `InvalidImage`."""
        return preprocess(load_image(image), self.size, self.mean, self.std)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(as_input(batch, self.device, self.dtype)).float().cpu()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits[:, : len(self.classes)] / self.temperature, dim=1)

    def _as_dicts(self, probs: torch.Tensor) -> list[dict[str, float]]:
        return [dict(zip(self.classes, map(float, row))) for row in probs.tolist()]

    def predict(self, image: ImageInput) -> dict[str, float]:
        """Class probabilities (summing to 1) for one image."""
        return self._as_dicts(self.probabilities(self.logits(self.tensor(image)[None])))[0]

    def _chunks(self, images: list[ImageInput], batch_size: int):
        """(results with each bad image's `InvalidImage` in place, indices of good images, their batch) per chunk."""
        for start in range(0, len(images), batch_size):
            chunk, good, tensors = images[start : start + batch_size], [], []
            out: list = [None] * len(chunk)
            for i, image in enumerate(chunk):
                try:
                    tensors.append(self.tensor(image))
                    good.append(i)
                except InvalidImage as ex:
                    out[i] = ex
            yield out, good, torch.stack(tensors) if tensors else None

    def predict_batch(self, images: list[ImageInput], batch_size: int = 32) -> list[dict[str, float] | InvalidImage]:
        """Probabilities for many images, batched; a bad image yields its `InvalidImage` in its place."""
        results: list[dict[str, float] | InvalidImage] = []
        for out, good, batch in self._chunks(images, batch_size):
            if batch is not None:
                for i, probs in zip(good, self._as_dicts(self.probabilities(self.logits(batch)))):
                    out[i] = probs
            results += out
        return results

    @torch.inference_mode()
    def _known(self, batch: torch.Tensor) -> tuple[torch.Tensor, list[bool], list[float | None]]:
        """Logits plus the "not sure" test, from one forward pass (features only when the detector needs them)."""
        det = self.detector
        if det is None:
            logits = self.logits(batch)
            return logits, [True] * len(logits), [None] * len(logits)
        feats = None
        if det.needs_features:
            feats, logits = features_and_logits(self.model, as_input(batch, self.device, self.dtype))
            feats, logits = feats.cpu().numpy(), logits.cpu()
        else:
            logits = self.logits(batch)
        known, score = det.known(feats, logits.numpy())
        return logits, [bool(k) for k in known], [float(s) for s in score]

    def classify_batch(self, images: list[ImageInput], batch_size: int = 32) -> list[dict | InvalidImage]:
        """Like `predict_batch`, but each result is {"label", "probs", "confidence", "known", "score", "message"}.

        `known` is False for an image unlike the training classes (then `message` says "not sure ..." and
        `label` is still the likeliest class); `score` is the detector's (higher = more unusual)."""
        results: list[dict | InvalidImage] = []
        for out, good, batch in self._chunks(images, batch_size):
            if batch is not None:
                logits, known, scores = self._known(batch)
                for i, probs, k, s in zip(good, self._as_dicts(self.probabilities(logits)), known, scores):
                    label, conf = top_label(probs)
                    msg = None if k else not_sure_message(self.classes)
                    out[i] = {"label": label, "probs": probs, "confidence": conf, "known": k, "score": s, "message": msg}
            results += out
        return results

    def classify(self, image: ImageInput) -> dict:
        """One image: calibrated probabilities, label, `known` and score (see `classify_batch`); raises `InvalidImage`."""
        res = self.classify_batch([image])[0]
        if isinstance(res, InvalidImage):
            raise res
        return res

    def explain(self, image: ImageInput, target: str | int | None = None):
        """Grad-CAM: where the model looked for `target` (default: the predicted class); see `otter.model.explain`."""
        from .explain import explain  # imported on use: plain prediction never loads it

        return explain(self, image, target)


def not_sure_message(classes: list[str]) -> str:
    return f"not sure (looks like none of: {', '.join(classes)})"


def top_label(probs: dict[str, float]) -> tuple[str, float]:
    label = max(probs, key=probs.get)
    return label, probs[label]
