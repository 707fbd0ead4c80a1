"""EfficientNet-Lite0's feature extractor in plain torch, for serving: the same modules, names and outputs as timm's
`tf_efficientnet_lite0(num_classes=0, global_pool="")`, without importing timm.

Why by hand: importing timm imports torchvision, whose detection ops import `torch._dynamo`, about 2.5 s of a
2-core CPU's cold start (`python -X importtime`), to build a network that is 60 lines of convolutions. Training
still builds it with timm (fastai's `vision_learner` path); a saved model's weights load into either, and
tests/test_plain_model.py checks that this network gives timm's outputs for the same weights.

The network (Tan & Le 2019, the "Lite" variant: ReLU6, no squeeze-excitation, stem and head not scaled):
a stride-2 3x3 stem to 32 channels, seven stages of depthwise-separable / inverted-residual blocks, a 1x1 head to
1280 channels. TensorFlow's "SAME" padding: strided convolutions pad on the right/bottom as needed; BatchNorm eps 1e-3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (block kind, repeats, kernel, first stride, expansion, output channels): timm's arch_def for efficientnet_lite
STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
NUM_FEATURES = 1280
BN_EPS = 1e-3  # TensorFlow's default, which these weights were trained with


class Conv2dSame(nn.Conv2d):
    """A strided convolution with TensorFlow's "SAME" padding: the input is padded (more on the right and bottom)
    so that the output has ceil(input / stride) pixels, whatever the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):  # width, then height
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm followed by its activation, as timm's class of the same name (same buffers, `drop` and `act`
    children), so that `otter.model.predict.fold_batchnorm` folds it into the convolution before it."""

    def __init__(self, channels: int, act: bool = True):
        super().__init__(channels, eps=BN_EPS)
        self.drop = nn.Identity()
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


def conv(c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride > 1:
        return Conv2dSame(c_in, c_out, k, stride, groups=groups, bias=False)
    return nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, groups=groups, bias=False)


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int):
        super().__init__()
        self.conv_dw, self.bn1 = conv(c_in, c_in, k, stride, groups=c_in), BatchNormAct2d(c_in)
        self.aa, self.se = nn.Identity(), nn.Identity()
        self.conv_pw, self.bn2 = conv(c_in, c_out), BatchNormAct2d(c_out, act=False)
        self.drop_path = nn.Identity()
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.se(self.aa(self.bn1(self.conv_dw(x))))))
        return x + self.drop_path(y) if self.skip else y


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.conv_pw, self.bn1 = conv(c_in, mid), BatchNormAct2d(mid)
        self.conv_dw, self.bn2 = conv(mid, mid, k, stride, groups=mid), BatchNormAct2d(mid)
        self.aa, self.se = nn.Identity(), nn.Identity()
        self.conv_pwl, self.bn3 = conv(mid, c_out), BatchNormAct2d(c_out, act=False)
        self.drop_path = nn.Identity()
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(self.se(self.aa(y))))
        return x + self.drop_path(y) if self.skip else y


class EfficientNetLite0(nn.Module):
    """The feature extractor: `forward_features(x)` gives the (N, 1280, H/32, W/32) map that fastai's head pools."""

    num_features = NUM_FEATURES

    def __init__(self):
        super().__init__()
        self.conv_stem, self.bn1 = conv(3, STEM_CHANNELS, 3, 2), BatchNormAct2d(STEM_CHANNELS)
        stages, c_in = [], STEM_CHANNELS
        for kind, repeats, k, stride, expand, c_out in STAGES:
            blocks = []
            for i in range(repeats):
                s = stride if i == 0 else 1
                blocks.append(
                    DepthwiseSeparableConv(c_in, c_out, k, s) if kind == "ds" else InvertedResidual(c_in, c_out, k, s, expand)
                )
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head, self.bn2 = conv(c_in, NUM_FEATURES), BatchNormAct2d(NUM_FEATURES)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))

    forward = forward_features
