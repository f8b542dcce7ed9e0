"""Mobile chain-net operators beyond layers.py, and the one place that turns a BlockKey into torch.

The ``mbconv`` (MnasNet) and ``fbnet`` spaces describe a network as a list of ``BlockKey``s; this
module builds a module for one key (``build_block``), counts its MACs and parameters without
building it (``block_macs_params``) and chains keys into a whole network (``ChainNet``), so what a
lookup table prices, what the cost counters count and what ``build`` returns are the same blocks.

Block ops (key parameters in brackets; activations are ReLU, ``hs:0``):
- ``Conv`` [kernel, hs]: the stem, conv -> BN -> ReLU.
- ``expanded_conv`` [expand (middle width), kernel, stride, idskip, se (squeeze width, 0: none),
  hs, groups]: [1x1 expand, grouped when ``groups`` > 1, then a channel shuffle] -> kxk depthwise
  -> [SE] -> 1x1 linear projection [+ identity]. With ``expand`` equal to the input width and no
  groups there is no expansion conv: a depthwise-separable conv (MnasNet's SepConv, FBNet's e1).
- ``regular_conv`` [kernel, stride, idskip, se]: a plain kxk conv -> BN -> ReLU [-> SE] [+ identity]
  (MnasNet's "regular conv" op; its SE acts on the conv's output).
- ``Conv_1`` (1x1 head conv), ``AvgPool2D`` (global mean), ``Logits`` (the classifier).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import BlockKey
from .errors import UserError
from .layers import ConvBNAct

HEAD_OPS = ("Conv_1", "AvgPool2D", "Logits")


def down(size: int, stride: int) -> int:
    """Output size of a 'same'-padded conv (padding k // 2)."""
    return (size - 1) // stride + 1


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups, so the next grouped conv sees every group."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SqueezeExciteSigmoid(nn.Module):
    """MnasNet's squeeze-and-excitation: global mean -> 1x1 (ReLU) -> 1x1 -> sigmoid gate."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(y))))


class InvertedBottleneck(nn.Module):
    """[grouped 1x1 expand -> shuffle] -> kxk depthwise -> [SE] -> 1x1 projection (+ identity)."""

    def __init__(self, cin: int, cout: int, mid: int, kernel: int, stride: int, squeeze: int = 0,
                 residual: bool = False, groups: int = 1):
        super().__init__()
        has_expand = mid != cin or groups > 1
        self.expand = ConvBNAct(cin, mid, 1, groups=groups) if has_expand else None
        self.shuffle = ChannelShuffle(groups) if groups > 1 else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid)
        self.se = SqueezeExciteSigmoid(mid, squeeze) if squeeze else None
        self.project = ConvBNAct(mid, cout, 1, groups=groups, act="none")
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand is not None:
            y = self.expand(y)
        if self.shuffle is not None:
            y = self.shuffle(y)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class RegularConv(nn.Module):
    """A plain kxk conv -> BN -> ReLU, optionally gated by SE, optionally with an identity."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, squeeze: int = 0,
                 residual: bool = False):
        super().__init__()
        self.conv = ConvBNAct(cin, cout, kernel, stride)
        self.se = SqueezeExciteSigmoid(cout, squeeze) if squeeze else None
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.se is not None:
            y = self.se(y)
        return x + y if self.residual else y


class GlobalPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class Classifier(nn.Module):
    def __init__(self, cin: int, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class MixedOp(nn.Module):
    """Every candidate of one searchable layer side by side, for differentiable NAS (FBNet's DNAS).

    ``forward(x)`` returns a ``(n_candidates, N, C, H, W)`` stack of all candidates' outputs;
    ``weighted(x, w)`` their sum weighted by ``w`` (e.g. Gumbel-softmax samples of the layer's
    logits). Every candidate maps the layer's input shape to the same output shape.
    """

    def __init__(self, candidates: list[nn.Module], names: list[str] | None = None):
        super().__init__()
        self.candidates = nn.ModuleList(candidates)
        self.names = list(names) if names is not None else [str(i) for i in range(len(candidates))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([c(x) for c in self.candidates])

    def weighted(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return (weights.reshape(-1, *([1] * x.dim())) * self(x)).sum(0)


def _p(key: BlockKey, name: str, default: int = 0) -> int:
    return dict(key.params).get(name, default)


def block_macs_params(key: BlockKey) -> tuple[int, int]:
    """MACs (convs and linear layers; biases not counted) and parameters of one block."""
    h, w, cin = key.input if len(key.input) == 3 else (1, 1, key.input[0])
    if key.op in ("Conv", "Conv_1"):
        ho, wo, cout = key.output
        k = _p(key, "kernel", 3 if key.op == "Conv" else 1)
        return ho * wo * k * k * cin * cout, k * k * cin * cout + 2 * cout
    if key.op == "expanded_conv":
        ho, wo, cout = key.output
        mid, k, g, sq = key.param("expand"), key.param("kernel"), _p(key, "groups", 1), _p(key, "se")
        macs = params = 0
        if mid != cin or g > 1:
            macs += h * w * cin * mid // g
            params += cin * mid // g + 2 * mid
        macs += ho * wo * mid * k * k
        params += mid * k * k + 2 * mid
        if sq:
            macs += 2 * mid * sq
            params += 2 * mid * sq + sq + mid
        macs += ho * wo * mid * cout // g
        params += mid * cout // g + 2 * cout
        return macs, params
    if key.op == "regular_conv":
        ho, wo, cout = key.output
        k, sq = key.param("kernel"), _p(key, "se")
        macs, params = ho * wo * k * k * cin * cout, k * k * cin * cout + 2 * cout
        if sq:
            macs += 2 * cout * sq
            params += 2 * cout * sq + sq + cout
        return macs, params
    if key.op in ("AvgPool2D", "skip"):
        return 0, 0
    if key.op == "Logits":
        return cin * key.output[0], cin * key.output[0] + key.output[0]
    raise UserError(f"block {key}: unknown op {key.op!r} for a mobile chain net")


def build_block(key: BlockKey) -> tuple[nn.Module, tuple[int, ...]]:
    """A module computing one block on its own, and its (C, H, W) input shape."""
    h, w, cin = key.input if len(key.input) == 3 else (1, 1, key.input[0])
    shape = (cin, h, w)
    if key.op in ("Conv", "Conv_1"):
        k = _p(key, "kernel", 3 if key.op == "Conv" else 1)
        stride = 1 if key.output[0] == h else 2  # the stem halves the input; head convs keep it
        return ConvBNAct(cin, key.output[2], k, stride), shape
    if key.op == "expanded_conv":
        return InvertedBottleneck(cin, key.output[2], key.param("expand"), key.param("kernel"),
                                  key.param("stride"), _p(key, "se"), bool(_p(key, "idskip")),
                                  _p(key, "groups", 1)), shape
    if key.op == "regular_conv":
        return RegularConv(cin, key.output[2], key.param("kernel"), key.param("stride"), _p(key, "se"),
                           bool(_p(key, "idskip"))), shape
    if key.op == "AvgPool2D":
        return GlobalPool(), shape
    if key.op == "Logits":
        return Classifier(cin, key.output[0]), shape
    if key.op == "skip":
        return Identity(), shape
    raise UserError(f"block {key}: unknown op {key.op!r} for a mobile chain net")


class ChainNet(nn.Sequential):
    """A whole network as the chain of its blocks, one module per BlockKey (in ``keys`` order)."""

    def __init__(self, keys: list[BlockKey]):
        super().__init__(*[build_block(k)[0] for k in keys])
        self.keys = list(keys)
