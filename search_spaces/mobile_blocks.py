"""MobileNetV2-style blocks as BlockKeys: their shapes, costs and modules (ProxylessNAS, Single-Path).

Two key dialects are in use and both are read here, as by the Pixel cost model's ``operators``:
Once-for-All's ``expanded_conv`` keys carry ``se`` and ``hs`` and their ``expand`` is the middle
channel count; ProxylessNAS's carry neither and their ``expand`` is the expansion ratio.
Stems (``Conv``), head convs (``Conv_1``) and ``Logits`` (global pool, then the classifier) follow
the same table conventions.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import BlockKey
from .errors import UserError
from .layers import ConvBNAct, MBConv


def down(size: int, stride: int) -> int:
    """Output size of a 'same'-padded conv (padding k // 2)."""
    return (size - 1) // stride + 1


def is_ratio_key(key: BlockKey) -> bool:
    """True for ProxylessNAS-style ``expanded_conv`` keys, whose ``expand`` is a ratio."""
    names = {k for k, _ in key.params}
    return key.op == "expanded_conv" and not names & {"se", "hs"}


def middle_channels(key: BlockKey) -> int:
    """The expanded width of an ``expanded_conv`` key in either dialect."""
    e = key.param("expand")
    return int(round(key.input[2] * e)) if is_ratio_key(key) else int(e)


def mbconv_key(size: int, cin: int, cout: int, mid: int, kernel: int, stride: int, residual: bool,
               ratio: int | None = None) -> BlockKey:
    """An ``expanded_conv`` key: ProxylessNAS dialect when ``ratio`` is given, else OFA's (se:0, hs:0)."""
    so = down(size, stride)
    common = (("kernel", kernel), ("stride", stride), ("idskip", int(residual)))
    if ratio is not None:
        return BlockKey("expanded_conv", (size, size, cin), (so, so, cout), (("expand", ratio),) + common)
    return BlockKey("expanded_conv", (size, size, cin), (so, so, cout),
                    (("expand", mid),) + common + (("se", 0), ("hs", 0)))


def block_macs_params(key: BlockKey) -> tuple[int, int]:
    """MACs (convs and linear layers, biases not counted) and params of one block (BN included)."""
    if key.op == "expanded_conv":
        (h, w, cin), (ho, wo, cout) = key.input, key.output
        mid, k = middle_channels(key), key.param("kernel")
        macs = params = 0
        if mid != cin:
            macs += h * w * cin * mid
            params += cin * mid + 2 * mid
        macs += ho * wo * mid * k * k
        params += mid * k * k + 2 * mid
        macs += ho * wo * mid * cout
        params += mid * cout + 2 * cout
        return macs, params
    if key.op in ("Conv", "Conv_1"):
        (_, _, cin), (ho, wo, c) = key.input, key.output
        k = dict(key.params).get("kernel", 3 if key.op == "Conv" else 1)
        return ho * wo * k * k * cin * c, k * k * cin * c + 2 * c
    if key.op == "Logits":
        cin, cout = key.input[-1], key.output[-1]
        return cin * cout, cin * cout + cout
    raise UserError(f"unknown block op {key.op!r} for a MobileNetV2-style chain")


class Classifier(nn.Module):
    """The ``Logits`` block: global average pool, dropout, linear classifier."""

    def __init__(self, cin: int, n_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(torch.flatten(x.mean((2, 3)), 1)))


def build_mobile_block(key: BlockKey, act: str, dropout: float = 0.0) -> tuple[nn.Module, tuple[int, ...]]:
    """A module computing one block (activation ``act`` throughout), and its (C, H, W) input shape."""
    if len(key.input) != 3:
        raise UserError(f"block {key}: expected an HxWxC input")
    h, w, cin = key.input
    shape = (cin, h, w)
    if key.op == "Conv":
        k = dict(key.params).get("kernel", 3)
        stride = max(1, round(h / key.output[0]))
        return ConvBNAct(cin, key.output[2], k, stride, act=act), shape
    if key.op == "Conv_1":
        return ConvBNAct(cin, key.output[2], dict(key.params).get("kernel", 1), act=act), shape
    if key.op == "expanded_conv":
        if dict(key.params).get("se", 0):
            raise UserError(f"block {key}: squeeze-excite is not part of this space")
        return MBConv(cin, key.output[2], middle_channels(key), key.param("kernel"), key.param("stride"),
                      act, False, bool(key.param("idskip"))), shape
    if key.op == "Logits":
        return Classifier(cin, key.output[-1], dropout), shape
    raise UserError(f"unknown block op {key.op!r} for a MobileNetV2-style chain")
