"""The training recipes, in one place: the measured defaults that training, the audit, the command line's help and
the Train tab's placeholders all read (plain data; importing this loads no training library)."""

from __future__ import annotations

from . import backbones

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

# The audit's fine-tuning (`audit --method finetune`). From scratch: the default architecture on a shorter schedule,
# so that 5 folds of ~250 images take about 5 minutes on 2 CPU cores (bench/audit.py, bench/RESULTS.md).
QUICK_RECIPE = {"arch": "xresnet18", "pretrained": False, "sizes": (64, 128), "epochs": (10, 8), "mixup": 0.2}
# The default: with ImageNet weights (efficientnet_lite0's ship in a package, so this works offline) transfer
# learning is far more accurate, and an audit's ranking is only as good as its models (bench/RESULTS.md).
# PRETRAINED_RECIPE shortened: 160 px, 2 head-only + 2 epochs per fold.
QUICK_PRETRAINED_RECIPE = {"arch": "efficientnet_lite0", "pretrained": True, "sizes": (160,), "epochs": (2,), "frozen_epochs": 2}


def shown(value) -> str:
    """A recipe value as a user types it: (64, 128) -> "64,128", 0.001 -> "1e-3"."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def both(key: str, pretrained: dict = PRETRAINED_RECIPE, scratch: dict = SCRATCH_RECIPE) -> str:
    """The pretrained recipe's value and the from-scratch one's, for help texts: "224; from scratch 64,128,192"."""
    return f"{shown(pretrained[key])}; from scratch {shown(scratch[key])}"
