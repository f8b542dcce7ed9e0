"""Plain torch layers shared by the chain spaces (MobileNet-style inverted residual blocks)."""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping more than 10 %.

    The rule of the MobileNet family's reference code, which every published width follows.
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


ACTIVATIONS = {"relu": nn.ReLU, "h_swish": nn.Hardswish, "relu6": nn.ReLU6, "none": nn.Identity}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class ConvBNAct(nn.Sequential):
    """conv -> BatchNorm -> activation; BN or activation may be left out."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str = "relu", bn: bool = True, bias: bool = False):
        layers = {"conv": nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias)}
        if bn:
            layers["bn"] = nn.BatchNorm2d(cout)
        if act != "none":
            layers["act"] = activation(act)
        super().__init__()
        for k, m in layers.items():
            self.add_module(k, m)


class SqueezeExcite(nn.Module):
    """Channel gating: global pool -> 1x1 reduce -> ReLU -> 1x1 expand -> hard sigmoid."""

    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(y))))


def se_channels(mid: int, reduction: int = 4) -> int:
    """Squeeze width of an SE module on ``mid`` channels (Once-for-All / MobileNetV3 rule)."""
    return make_divisible(mid // reduction, 8)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 linear projection (+ skip)."""

    def __init__(self, cin: int, cout: int, mid: int, kernel: int, stride: int, act: str,
                 se: bool, residual: bool | None = None):
        super().__init__()
        self.expand = ConvBNAct(cin, mid, 1, act=act) if mid != cin else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, se_channels(mid)) if se else None
        self.project = ConvBNAct(mid, cout, 1, act="none")
        self.residual = (stride == 1 and cin == cout) if residual is None else residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y
