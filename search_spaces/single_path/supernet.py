"""Single-Path NAS's superkernel supernet: one set of weights per layer encodes all of its choices.

Each searchable layer stores one expand-6 inverted residual with a 5x5 depthwise kernel:
- the 3x3 choice is the kernel's inner 3x3 (the outer ring is the 5x5 choice's extra weights);
- the expand-3 choice is the first half of the expanded channels (expand conv rows, BN,
  depthwise channels, projection columns);
- skip runs nothing (only the layers with an identity shortcut offer it).

``set_active(arch)`` picks one path, ``forward`` runs it with slices of the shared weights (views:
in training, gradients and BatchNorm statistics land in the shared storage), and
``extract(arch)`` returns ``space.build(arch)`` with the inherited weights. The threshold-based
search (choices from weight norms) builds on ``SuperkernelMBConv.run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Arch
from ..chain import ChainNet
from ..layers import ConvBNAct, MBConv
from ..mobile_blocks import Classifier
from .layout import ACT, FIRST_WIDTH, HEAD, N_CLASSES, OPTIONS, SKIP, STEM, layer_plan

if TYPE_CHECKING:  # the space hands itself in; this file needs its type only for annotations
    from .space import SinglePathSpace

MAX_KERNEL, MAX_EXPAND = 5, 6


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, n: int, training: bool) -> torch.Tensor:
    if training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    return F.batch_norm(x, bn.running_mean[:n], bn.running_var[:n], bn.weight[:n], bn.bias[:n],
                        training, bn.momentum if bn.momentum is not None else 0.0, bn.eps)


def _centre(kernel: torch.Tensor, size: int) -> torch.Tensor:
    off = (kernel.shape[-1] - size) // 2
    return kernel[..., off:off + size, off:off + size]


class SuperkernelMBConv(nn.Module):
    """An inverted residual holding the k5e6 weights; ``run(x, mid, kernel)`` runs any (k, e) inside."""

    def __init__(self, cin: int, cout: int, stride: int, residual: bool, act: str = ACT):
        super().__init__()
        self.cin, self.cout, self.stride, self.residual = cin, cout, stride, residual
        mid = cin * MAX_EXPAND
        self.expand = ConvBNAct(cin, mid, 1, act=act)
        self.depthwise = ConvBNAct(mid, mid, MAX_KERNEL, stride, groups=mid, act=act)
        self.project = ConvBNAct(mid, cout, 1, act="none")
        self._act = F.relu if act == "relu" else F.relu6

    def run(self, x: torch.Tensor, mid: int, kernel: int) -> torch.Tensor:
        """The layer's output with ``mid`` expanded channels and a ``kernel`` x ``kernel`` depthwise conv."""
        t = self.training
        y = self._act(_bn(F.conv2d(x, self.expand.conv.weight[:mid]), self.expand.bn, mid, t))
        dw = _centre(self.depthwise.conv.weight[:mid], kernel)
        y = F.conv2d(y, dw, None, self.stride, kernel // 2, 1, mid)
        y = self._act(_bn(y, self.depthwise.bn, mid, t))
        y = _bn(F.conv2d(y, self.project.conv.weight[:, :mid]), self.project.bn, self.cout, t)
        return x + y if self.residual else y

    def subnet_state_dict(self, mid: int, kernel: int) -> dict[str, torch.Tensor]:
        """The weights of the static ``MBConv`` for (mid, kernel), in its state-dict naming."""
        sd = {}
        for name, conv_bn, n in (("expand", self.expand, mid), ("depthwise", self.depthwise, mid),
                                 ("project", self.project, self.cout)):
            w = conv_bn.conv.weight
            if name == "expand":
                w = w[:mid]
            elif name == "depthwise":
                w = _centre(w[:mid], kernel)
            else:
                w = w[:, :mid]
            sd[f"{name}.conv.weight"] = w
            bn = conv_bn.bn
            for key in ("weight", "bias", "running_mean", "running_var"):
                sd[f"{name}.bn.{key}"] = getattr(bn, key)[:n]
            sd[f"{name}.bn.num_batches_tracked"] = bn.num_batches_tracked
        return {k: v.detach().clone().contiguous() for k, v in sd.items()}


class SinglePathSupernet(nn.Module):
    """The Single-Path NAS supernet: fixed stem, first layer and head around 21 superkernel layers."""

    def __init__(self, space: SinglePathSpace, dropout: float | None = None):
        super().__init__()
        self.space = space
        self.dropout_rate = space.dropout if dropout is None else dropout
        plan = layer_plan(space.image_size)
        self.stem = ConvBNAct(3, STEM, 3, 2, act=ACT)
        self.first = MBConv(STEM, FIRST_WIDTH, STEM, 3, 1, ACT, False, False)
        self.layers = nn.ModuleList([SuperkernelMBConv(cin, cout, s, sc) for _, cin, cout, s, sc in plan[1:]])
        self.head = ConvBNAct(plan[-1][2], HEAD, 1, act=ACT)
        self.classifier = Classifier(HEAD, N_CLASSES, self.dropout_rate)
        self._arch: Arch | None = None
        self._plan: list[tuple[int, int] | None] = []
        self.set_active(self.largest_arch())

    @staticmethod
    def largest_arch() -> Arch:
        return {"ops": ["k3e1"] + ["k5e6"] * 21}

    @property
    def active_arch(self) -> Arch | None:
        return self._arch

    def _paths(self, arch: Arch) -> list[tuple[int, int] | None]:
        """(mid, kernel) of layers 1..21, None where the layer is skipped."""
        out = []
        for layer, name in zip(self.layers, arch["ops"][1:]):
            if name == SKIP:
                out.append(None)
            else:
                k, e = OPTIONS[name]
                out.append((layer.cin * e, k))
        return out

    def set_active(self, arch: Arch) -> "SinglePathSupernet":
        """Make ``arch`` the path that ``forward`` runs."""
        arch = self.space.validate(arch)
        self._arch = arch
        self._plan = self._paths(arch)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))
        for layer, path in zip(self.layers, self._plan):
            if path is not None:
                x = layer.run(x, *path)
        return self.classifier(self.head(x))

    def subnet_state_dict(self, arch: Arch | None = None) -> dict[str, torch.Tensor]:
        """The state dict of ``space.build(arch)`` holding this supernet's weights for that path."""
        paths = self._plan if arch is None else self._paths(self.space.validate(arch))
        parts = [self.stem.state_dict(), self.first.state_dict()]
        parts += [layer.subnet_state_dict(*p) for layer, p in zip(self.layers, paths) if p is not None]
        parts += [self.head.state_dict(), self.classifier.state_dict()]
        return {f"blocks.{i}.{k}": v.clone() for i, part in enumerate(parts) for k, v in part.items()}

    def extract(self, arch: Arch | None = None) -> ChainNet:
        """The path ``arch`` (default: the active one) as ``space.build(arch)``, weights inherited."""
        arch = self._arch if arch is None else self.space.validate(arch)
        net = self.space.build(arch)
        net.load_state_dict(self.subnet_state_dict(arch))
        w = self.classifier.linear.weight
        return net.to(device=w.device, dtype=w.dtype).train(self.training)
