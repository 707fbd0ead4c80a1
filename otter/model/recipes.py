"""The training recipes: `TrainConfig` and the default recipes it fills its blanks from (with ImageNet weights or
from scratch), and the audit's shorter ones. The CLI's help texts and the Train tab's placeholders are built from
these tables (`both`), so they never repeat a number by hand. Importing this loads no training library."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..config import PRECISION_CHOICES
from . import backbones
from .jobs import TrainError

# The default recipes, chosen by 5-fold cross-validation (bench/RESULTS.md). Fields left as None in a TrainConfig
# (lr: RECIPE) take these values, depending on whether ImageNet weights are used.
DEFAULT_LR = 3e-3
SCRATCH_RECIPE = {
    "arch": backbones.SCRATCH_DEFAULT,
    "sizes": (64, 128, 192),
    "epochs": (20, 25, 20),
    "mixup": 0.2,
    "lr": DEFAULT_LR,
    "frozen_epochs": 1,
    "freeze_bn": False,
    "bs": 32,
    "head": "fastai",
}
# EfficientNet-Lite0 from the packaged ImageNet weights: a linear head fitted exactly on the frozen features (logistic
# regression), then 3 epochs of everything with discriminative rates, at 224 px (its ImageNet size; 160 -> 224 scored
# lower), the body's BatchNorm keeping ImageNet's statistics (0.918 -> 0.980 on fold 0 when it did not). 5-fold CV
# 0.955 ± 0.030, against 0.943 for the fitted head alone; lr 3e-3 or 6 epochs 0.947 (bench/RESULTS.md, run 32).
PRETRAINED_RECIPE = {
    "arch": backbones.PRETRAINED_DEFAULT,
    "sizes": (224,),
    "epochs": (3,),
    "mixup": 0.0,
    "lr": 1e-3,
    "frozen_epochs": 0,  # the head is fitted exactly instead (head "linear"); fastai's head took 3 SGD epochs
    "freeze_bn": True,
    "bs": 16,  # as accurate as 32 in 5-fold CV (runs 15-16), 0.9 GB less memory (3.1 GB peak) and a little faster
    "head": "linear",
}
# Small pictures (the median shorter side of the data set's images at most SMALL_SIDE px) may train better at a smaller
# size, longer and faster: where the config left sizes to the recipe, training first fits the head on the frozen
# features at both sizes and keeps the recipe whose head has the lower held-out log-loss (`TrainConfig.for_pictures`,
# otter.model.train). 8 px digits: 0.41 at 64 px against 0.47 at 224, and 15 epochs at 64 px and lr 0.01 scored
# 0.98 on test against 0.92 for the usual recipe (logistic regression on the pixels: 0.95). Animal-MNIST's 28 px
# silhouettes: 0.36 at 224 px against 0.54, and the usual recipe scored 0.958 against 0.938 (bench/RESULTS.md, run 50).
# The otters (photos of 147 px and more a side) never take the probe.
SMALL_SIDE = 64
SMALL_PICTURES_RECIPE = {"sizes": (64,), "epochs": (15,), "lr": 1e-2}
# The audit's fine-tuning (`audit --method finetune`). From scratch: the default architecture on a shorter schedule,
# so that 5 folds of ~250 images take about 5 minutes on 2 CPU cores (bench/audit.py, bench/RESULTS.md).
QUICK_RECIPE = {"arch": "xresnet18", "pretrained": False, "sizes": (64, 128), "epochs": (10, 8), "mixup": 0.2}
# The default: with ImageNet weights (efficientnet_lite0's ship in a package, so this works offline) transfer
# learning is far more accurate, and an audit's ranking is only as good as its models (bench/RESULTS.md).
# PRETRAINED_RECIPE shortened: 160 px, 2 head-only + 2 epochs per fold.
QUICK_PRETRAINED_RECIPE = {"arch": "efficientnet_lite0", "pretrained": True, "sizes": (160,), "epochs": (2,), "frozen_epochs": 2}
HEADS = tuple(backbones.HEAD_OPTIONS)
# How the fitted linear head sees mirror images (TrainConfig.head_mirror): "none", the images as validation sees them;
# "both", each image and its mirror image as two training rows (the flips fine-tuning's augmentation also shows);
# "mean", the mean of the two images' features (run 32's head).
HEAD_MIRRORS = ("none", "both", "mean")
RECIPE = "recipe"  # TrainConfig.lr: the recipe's learning rate (None: find one with lr_find)
MIN_IMAGES_PER_CLASS = 2


@dataclass
class TrainConfig:
    arch: str | None = None  # None: the recipe's (efficientnet_lite0 pretrained, xresnet18 from scratch)
    pretrained: bool = True
    sizes: tuple[int, ...] | None = None  # progressive resizing, e.g. (64, 128, 192)
    epochs: int | tuple[int, ...] | None = None  # per size (one number for all sizes, or one per size)
    frozen_epochs: int | None = None  # per size, head only; pretrained only
    lr: float | str | None = RECIPE  # the recipe's (3e-3 from scratch, 1e-3 pretrained); None: find it with lr_find
    bs: int | None = None  # None: the recipe's (16 pretrained, 32 from scratch)
    valid_pct: float = 0.2
    seed: int = 42
    aug: float = 1.0  # strength multiplier for rotation, warp and lighting; 0 turns augmentation off
    # Mirror images among fine-tuning's augmentations (with aug > 0). "auto": yes, unless the fitted head's test finds
    # that mirror images look like other classes (digits, letters: otter.model.heads.mirror_test); then neither the
    # head nor fine-tuning sees them. True or False: always or never, untested.
    flip: bool | str = "auto"
    min_scale: float = 1.0  # random resized crop: smallest share of the image kept (1 = no crop; measured best)
    mixup: float | None = None  # MixUp alpha; 0 = off
    label_smoothing: float = 0.1
    wd: float | None = None
    ood_method: str = "mahalanobis"  # "not sure" detector fitted on the validation split (otter.model.ood.METHODS)
    negatives: float = 0.0  # synthetic "none of these" images per training image, as an extra output (otter.data.synthetic)
    precision: str = "auto"  # "auto" ($OTTER_PRECISION, else bf16 autocast on CPUs with native bf16), "fp32" or "bf16"
    freeze_bn: bool | None = None  # pretrained: the body's BatchNorm keeps ImageNet's statistics (eval mode) throughout
    # "linear": one linear layer on the average-pooled features, first fitted exactly by logistic regression on the
    # frozen body's features of the training images (linear probing, then fine-tuning: Kumar et al. 2022; pretrained
    # only). "fastai": fastai's default head (concat pooling, two BatchNorm-Dropout-Linear blocks), trained by SGD.
    head: str | None = None
    # How the fitted linear head sees mirror images (HEAD_MIRRORS). "both": 5-fold CV on the otters 0.955 against 0.939
    # for "none" (bench/RESULTS.md, runs 34 and 46).
    head_mirror: str = "both"
    # Keep the state (the fitted head, or any epoch) that scored best on the validation split, not the last one.
    keep_best: bool = True
    # The fields left to the recipe (filled from it here, not given): only those may change with the pictures'
    # size (`for_pictures`). A field, so that the config keeps it through JSON (training in its own process); not
    # compared: two configs of the same values are the same settings.
    recipe_fields: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        recipe = PRETRAINED_RECIPE if self.pretrained else SCRATCH_RECIPE
        filled = set(self.recipe_fields)
        for key, value in recipe.items():
            if (self.lr == RECIPE) if key == "lr" else getattr(self, key) is None:  # lr None: lr_find
                setattr(self, key, value)
                filled.add(key)
        self.recipe_fields = tuple(sorted(filled))
        self.sizes = tuple(int(s) for s in self.sizes)
        if not isinstance(self.epochs, int):
            self.epochs = tuple(int(e) for e in self.epochs)

    def for_pictures(self, median_side: float) -> TrainConfig | None:
        """The small pictures' candidate for pictures whose shorter side is `median_side` px (the data set's median):
        with ImageNet weights and sizes left to the recipe, pictures of at most SMALL_SIDE px may train with
        SMALL_PICTURES_RECIPE's sizes, and its epochs and learning rate where those were left to the recipe too.
        None when they may not (training then never probes)."""
        if not self.pretrained or "sizes" not in self.recipe_fields or median_side > SMALL_SIDE:
            return None
        changes = {k: v for k, v in SMALL_PICTURES_RECIPE.items() if k in self.recipe_fields}
        if all(getattr(self, k) == v for k, v in changes.items()):
            return None
        return replace(self, **changes)

    def epochs_per_size(self) -> list[int]:
        e = self.epochs
        if isinstance(e, int):
            return [e] * len(self.sizes)
        e = list(e)
        if len(e) != len(self.sizes):
            raise TrainError(f"give one epoch count per size: {len(self.sizes)} sizes but {len(e)} epoch counts")
        return e

    def check(self) -> None:
        if self.arch not in backbones.NAMES:
            raise TrainError(f"unknown architecture {self.arch!r}; choose one of {', '.join(backbones.NAMES)}")
        if self.pretrained and backbones.get(self.arch).library == "fastai":
            raise TrainError(
                f"{self.arch} has no ImageNet weights: train it from scratch (--no-pretrained), or use efficientnet_lite0"
            )
        if not self.sizes or any(int(s) < 16 or int(s) > 1024 for s in self.sizes):
            raise TrainError("sizes must be between 16 and 1024 pixels, e.g. 64,128")
        if self.head not in HEADS:
            raise TrainError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.head == "linear" and not self.pretrained:
            raise TrainError("the linear head is fitted on pretrained features: train from scratch with head 'fastai'")
        if self.flip not in (True, False, "auto"):
            raise TrainError(f"flip must be true, false or 'auto' (got {self.flip!r})")
        if self.head_mirror not in HEAD_MIRRORS:
            raise TrainError(f"unknown head_mirror {self.head_mirror!r}; choose one of {', '.join(HEAD_MIRRORS)}")
        fitted = self.head == "linear"  # the exact fit of the head is a stage of its own
        if any(n < 0 for n in self.epochs_per_size()) or self.frozen_epochs < 0:
            raise TrainError("epochs cannot be negative")
        if sum(self.epochs_per_size()) + self.frozen_epochs < 1 and not fitted:
            raise TrainError("need at least one epoch")
        if not 0 <= self.valid_pct < 0.9:
            raise TrainError("validation share must be between 0 and 0.9")
        if self.bs < 1:
            raise TrainError("batch size must be at least 1")
        if self.lr is not None and not (0 < self.lr < 10):
            raise TrainError("learning rate must be a positive number below 10")
        from .ood import METHODS

        if self.ood_method not in METHODS:
            raise TrainError(f"unknown 'not sure' method {self.ood_method!r}; choose one of {', '.join(METHODS)}")
        if not 0 <= self.negatives <= 10:
            raise TrainError("negatives (synthetic 'none of these' images per training image) must be between 0 and 10")
        if self.precision not in PRECISION_CHOICES:
            raise TrainError(f"unknown precision {self.precision!r}; choose {', '.join(PRECISION_CHOICES)}")
        if self.ood_method == "none_class" and not self.negatives:
            raise TrainError("the none_class 'not sure' method needs synthetic negatives (e.g. negatives=0.5)")


def shown(value) -> str:
    """A recipe value as a user types it: (64, 128) -> "64,128", 0.001 -> "1e-3", 0.2 -> "0.2"."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def both(
    key: str, pretrained: dict = PRETRAINED_RECIPE, scratch: dict = SCRATCH_RECIPE, small: dict | None = SMALL_PICTURES_RECIPE
) -> str:
    """The pretrained recipe's value (with the small pictures' one) and the from-scratch one's, for help texts:
    "224, or 64 where pictures of at most 64 px fit better there; from scratch 64,128,192"."""
    small = (
        f", or {shown(small[key])} where pictures of at most {SMALL_SIDE} px fit better there" if small and key in small else ""
    )
    return f"{shown(pretrained[key])}{small}; from scratch {shown(scratch[key])}"


def recipe_line(recipe: dict | None) -> str | None:
    """One line saying which recipe the pictures' size chose (model.json's "recipe"), or None."""
    if not recipe:
        return None
    (small, loss_small), (usual, loss_usual) = recipe["head_log_loss"].items()
    if recipe["chosen"] == "small pictures":
        parts = [f"{shown(recipe['sizes'])} px"]
        parts += [f"{shown(recipe['epochs'])} epochs"] if "epochs" in recipe else []
        parts += [f"lr {shown(recipe['lr'])}"] if "lr" in recipe else []
        how, what = (small, usual), "trained at " + ", ".join(parts)
    else:
        how, what = (usual, small), "the usual recipe"
    losses = {small: loss_small, usual: loss_usual}
    return (
        f"small pictures (median {recipe['median_side']:g} px a side): the frozen network sees them better at {how[0]} "
        f"than at {how[1]} (held-out log-loss {losses[how[0]]:.3f} against {losses[how[1]]:.3f}): {what}"
    )
