"""The torch modules of the NASNet space: its ops, a cell (a small graph) and the network.

Conventions follow the released NASNet-A implementation (TF-slim ``nasnet_utils``), written here
from its description: every conv is ReLU -> conv (no bias) -> BN; a separable conv op is that
twice (depthwise kxk then pointwise 1x1, the first with the stride); a pooling op on an input of
another width adds a 1x1 conv + BN; an identity that must change stride or width is ReLU -> 1x1
conv -> BN. A cell first maps its newer input to the cell's width (ReLU -> 1x1 -> BN) and its
older one the same way, or with the factorized reduction (two shifted stride-2 1x1 paths) when it
is twice as large; the first stem cell reads the stem's output raw as its older input.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .genotype import N_INPUTS, OPS

BN_EPS = 1e-3


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0, dilation: int = 1):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, kernel, stride, padding, dilation, bias=False), _bn(cout))


class SepConv(nn.Sequential):
    """Two (ReLU, depthwise kxk, pointwise 1x1, BN) layers; the first carries the stride."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        p = kernel // 2
        super().__init__(
            nn.ReLU(), nn.Conv2d(cin, cin, kernel, stride, p, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False), _bn(cout),
            nn.ReLU(), nn.Conv2d(cout, cout, kernel, 1, p, groups=cout, bias=False),
            nn.Conv2d(cout, cout, 1, bias=False), _bn(cout))


class FactorizedConv(nn.Sequential):
    """ReLU, 1xk conv (horizontal stride), kx1 conv (vertical stride), BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        p = kernel // 2
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, (1, kernel), (1, stride), (0, p), bias=False),
                         nn.Conv2d(cout, cout, (kernel, 1), (stride, 1), (p, 0), bias=False), _bn(cout))


class Pool(nn.Module):
    def __init__(self, kind: str, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        p = kernel // 2
        self.pool = (nn.AvgPool2d(kernel, stride, p, count_include_pad=False) if kind == "avg"
                     else nn.MaxPool2d(kernel, stride, p))
        self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), _bn(cout)) if cin != cout else None

    def forward(self, x):
        x = self.pool(x)
        return self.proj(x) if self.proj is not None else x


def make_op(name: str, cin: int, cout: int, stride: int) -> nn.Module:
    """One of NASNet's ops from ``cin`` to ``cout`` channels at ``stride``."""
    if name == "identity":
        return nn.Identity() if stride == 1 and cin == cout else ReLUConvBN(cin, cout, 1, stride)
    if name in ("conv_1x3_3x1", "conv_1x7_7x1"):
        return FactorizedConv(cin, cout, 3 if name == "conv_1x3_3x1" else 7, stride)
    if name == "dil_conv_3x3":
        return ReLUConvBN(cin, cout, 3, stride, padding=2, dilation=2)
    if name in ("avg_pool_3x3", "max_pool_3x3", "max_pool_5x5", "max_pool_7x7"):
        return Pool(name[:3], cin, cout, int(name[-1]), stride)
    if name in ("conv_1x1", "conv_3x3"):
        k = int(name[-1])
        return ReLUConvBN(cin, cout, k, stride, padding=k // 2)
    if name.startswith("sep_conv_"):
        return SepConv(cin, cout, int(name[-1]), stride)
    raise ValueError(f"unknown NASNet op {name!r}; known: {', '.join(OPS)}")


class FactorizedReduce(nn.Module):
    """Halve the size with two stride-2 1x1 paths, the second shifted by one pixel; concat; BN."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.path1 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.path2 = nn.Conv2d(cin, cout - cout // 2, 1, bias=False)
        self.bn = _bn(cout)

    def forward(self, x):
        x = self.relu(x)
        a = self.path1(x[:, :, ::2, ::2])
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        b = self.path2(shifted[:, :, ::2, ::2])
        return self.bn(torch.cat([a, b], dim=1))


def preprocess(cin: int, size_in: int, cout: int, size_out: int) -> nn.Module:
    """Map a cell input to the cell's width and size (identity when it already has both)."""
    if size_in != size_out:
        return FactorizedReduce(cin, cout)
    if cin != cout:
        return ReLUConvBN(cin, cout, 1)
    return nn.Identity()


class Cell(nn.Module):
    """One NASNet cell: two preprocessed inputs, B blocks of two ops added, unused outputs concatenated.

    ``blocks``: B rows of (in_a, op_a, in_b, op_b). ``prev`` is None for the first stem cell (its
    older input is the newer one, read raw); otherwise (channels, size) of the older input.
    ``extra``: one more state concatenated (0 / 1 an input, 2 + j block j; -1 none).
    """

    def __init__(self, blocks: Sequence[Sequence[int]], reduction: bool, cur: tuple[int, int],
                 prev: tuple[int, int] | None, filters: int, extra: int = -1):
        super().__init__()
        self.blocks = [tuple(int(v) for v in b) for b in blocks]
        c_cur, s_cur = cur
        self.pre_cur = ReLUConvBN(c_cur, filters, 1)
        if prev is None:
            self.pre_prev, c0 = None, c_cur
        else:
            self.pre_prev, c0 = preprocess(prev[0], prev[1], filters, s_cur), filters
        stride = 2 if reduction else 1
        ops = []
        for ia, oa, ib, ob in self.blocks:
            for i, o in ((ia, oa), (ib, ob)):
                cin = c0 if i == 0 else filters
                ops.append(make_op(OPS[o], cin, filters, stride if i < N_INPUTS else 1))
        self.ops = nn.ModuleList(ops)
        used = {i for b in self.blocks for i in (b[0], b[2]) if i >= N_INPUTS}
        unused = {N_INPUTS + j for j in range(len(self.blocks))} - used
        self.concat = sorted(unused | ({extra} if extra >= 0 else set()))
        self.out_channels = filters * len(self.concat)

    def forward(self, cur: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        s1 = self.pre_cur(cur)
        s0 = cur if self.pre_prev is None else self.pre_prev(prev)
        states = [s0, s1]
        for j, (ia, _, ib, _) in enumerate(self.blocks):
            states.append(self.ops[2 * j](states[ia]) + self.ops[2 * j + 1](states[ib]))
        return torch.cat([states[i] for i in self.concat], dim=1)


class Stem(nn.Sequential):
    """3x3 stride-2 conv without padding, BN (no activation: every cell starts with a ReLU)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, 2, 0, bias=False), _bn(cout))


class Head(nn.Module):
    """ReLU, global average pool, classifier."""

    def __init__(self, cin: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x):
        return self.fc(F.relu(x).mean(dim=(2, 3)))


class NASNet(nn.Module):
    """Stem, cells (each reads the two previous outputs), head. ``cells[i].prev_none`` marks stem cell 0."""

    def __init__(self, stem: nn.Module, cells: Sequence[Cell], head: nn.Module):
        super().__init__()
        self.stem, self.cells, self.head = stem, nn.ModuleList(cells), head

    def forward(self, x):
        prev, cur = None, self.stem(x)
        for cell in self.cells:
            prev, cur = cur, cell(cur, prev)
        return self.head(cur)


class Add(nn.Module):
    """``x + x``: the add of two cell states, timed on one tensor (the additive model's unit)."""

    def forward(self, x):
        return x + x


class Concat(nn.Module):
    """``n`` copies of ``x`` concatenated on channels: a cell's output concat, timed on one tensor."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x):
        return torch.cat([x] * self.n, dim=1)


class CellUnit(nn.Module):
    """A cell on its own, for timing: two inputs (newer, older), or one for the first stem cell."""

    def __init__(self, cell: Cell):
        super().__init__()
        self.cell = cell

    def forward(self, cur, prev=None):
        return self.cell(cur, prev)
