"""The trained network rebuilt for prediction with torch (and torchvision for its ResNets) alone: no fastai import.

Importing fastai takes about 11 s on a 2-core CPU (it pulls in pandas, matplotlib, scipy, spaCy's hooks...), most
of the app's cold start. A saved model only needs its modules to have the same names and shapes as the fastai
`Sequential(body, head)` that was trained, so this file rebuilds that structure from plain modules: the same
state-dict keys, the same outputs (tests/test_plain_model.py checks both against fastai's own build). fastai
has no "inference-only" constructor of its own, which is why this is written here.

fastai's xResNets exist only in fastai, so `build` returns None for them and the caller builds with fastai.
"""

from __future__ import annotations

import torch
from torch import nn

from . import backbones


class ConcatPool(nn.Module):
    """fastai's `AdaptiveConcatPool2d()`: max-pool and average-pool to 1x1, concatenated (max first)."""

    def __init__(self):
        super().__init__()
        self.ap, self.mp = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mp(x), self.ap(x)], 1)


class TimmBody(nn.Module):
    """fastai's `TimmBody` for a timm network built with `num_classes=0, global_pool=''`: its feature maps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def head(n_features: int, n_out: int) -> nn.Sequential:
    """fastai's default `create_head(n_features, n_out)`: concat pool, flatten, then BatchNorm-Dropout-Linear twice
    (512 hidden units, ReLU between, dropout 0.25 then 0.5, no bias after BatchNorm), with the same indices."""
    nf = n_features * 2
    return nn.Sequential(
        ConcatPool(),
        nn.Flatten(),
        nn.BatchNorm1d(nf),
        nn.Dropout(0.25),
        nn.Linear(nf, 512, bias=False),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(512),
        nn.Dropout(0.5),
        nn.Linear(512, n_out, bias=False),
    )


def linear_head(n_features: int, n_out: int) -> nn.Sequential:
    """fastai's `create_head` with `backbones.HEAD_OPTIONS["linear"]`: average pool, flatten, one Linear with bias."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(n_features, n_out))


HEAD_BUILDERS = {"fastai": head, "linear": linear_head}


def build(name: str, n_out: int, head_kind: str = "fastai") -> nn.Sequential | None:
    """An untrained `Sequential(body, head)` with the keys of fastai's for `name` and head kind (model.json's "head":
    "fastai", the default head, or "linear"), or None for fastai-only bodies."""
    make_head = HEAD_BUILDERS[head_kind]
    bb = backbones.get(name)
    net = backbones.plain_body(name)  # timm bodies written out in plain torch: serving never imports timm
    if net is not None:
        return nn.Sequential(TimmBody(net), make_head(net.num_features, n_out))
    if bb.library == "timm":
        import timm

        net = timm.create_model(bb.timm_name, pretrained=False, num_classes=0, global_pool="")
        return nn.Sequential(TimmBody(net), make_head(net.num_features, n_out))
    if bb.library == "torchvision":
        import torchvision.models as tvm

        net = getattr(tvm, name)(weights=None)
        n_features = net.fc.in_features
        return nn.Sequential(nn.Sequential(*list(net.children())[: bb.body_cut]), make_head(n_features, n_out))
    return None
