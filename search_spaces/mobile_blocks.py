"""Mobile chain-net blocks as BlockKeys: their shapes, costs and modules, the one place keys become torch.

The ``mbconv`` (MnasNet), ``fbnet``, ``proxyless`` and ``single_path`` spaces describe a network as
a list of ``BlockKey``s; this module builds a module for one key (``build_block``), counts its MACs
and parameters without building it (``block_macs_params``), and its mixins give a space the costs,
``build_block`` and ``build`` (a ``chain.ChainNet``) that follow (``MobileBlocksMixin`` for a
``ChainSpace``, ``MobileChainMixin`` for a space with a resolution dim), so what a lookup table
prices, what the cost counters count and what ``build`` returns are the same blocks.

Two ``expanded_conv`` key dialects are read, as by the Pixel cost model's ``operators``:
Once-for-All's carry ``se`` and ``hs`` and their ``expand`` is the middle channel count;
ProxylessNAS's carry neither and their ``expand`` is the expansion ratio.

Block ops (key parameters in brackets; activations are ``build_block``'s ``act``, ReLU by default,
whatever ``hs`` says):
- ``Conv`` [kernel (3), hs]: the stem, conv -> BN -> act; its stride is input size / output size.
- ``expanded_conv`` [expand, kernel, stride, idskip, se, hs, groups] (``se``: 0 none, 1 Once-for-All's
  flag, a squeeze width otherwise; ``squeeze_channels`` is the one reading):
  [1x1 expand, grouped when ``groups`` > 1, then a channel shuffle] -> kxk depthwise -> [SE] ->
  1x1 linear projection [+ identity]. With a middle width equal to the input width and no groups
  there is no expansion conv: a depthwise-separable conv (MnasNet's SepConv, FBNet's e1).
- ``regular_conv`` [kernel, stride, idskip, se]: a plain kxk conv -> BN -> act [-> SE] [+ identity]
  (MnasNet's "regular conv" op; its SE acts on the conv's output).
- ``Conv_1`` [kernel (1), hs]: the 1x1 head conv; ``AvgPool2D``: global mean; ``skip``: identity;
  ``Logits``: [global mean, for a spatial input], dropout, the linear classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .base import Arch
from .blocks import BlockKey
from .chain import ChainNet
from .errors import UserError
from .layers import ConvBNAct, se_channels

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


@dataclass(frozen=True)
class BlockSpec:
    """A block key read once: shapes and settings with the dialect settled (``parse``).

    ``mid`` is ``expanded_conv``'s middle width (the ratio dialect resolved), ``squeeze`` the SE
    width on the op's SE input (0: none), ``kernel`` the op's default where the key has none.
    """

    op: str
    h: int
    w: int
    cin: int
    ho: int
    wo: int
    cout: int
    kernel: int
    stride: int
    mid: int
    squeeze: int
    groups: int
    residual: bool


_DEFAULT_KERNEL = {"Conv": 3, "Conv_1": 1}


def hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, C) of a key shape; a bare channel count C is 1x1xC."""
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 1:
        return 1, 1, shape[0]
    raise ValueError(f"shape {'x'.join(map(str, shape))} is neither HxWxC nor C")


@lru_cache(maxsize=None)
def parse(key: BlockKey) -> BlockSpec:
    """The settings of one key, for every reader (costs, ``build_block``, the latency cost model)."""
    h, w, cin = hwc(key.input)
    ho, wo, cout = hwc(key.output)
    p = dict(key.params)
    mid = middle_channels(key) if key.op == "expanded_conv" else cout
    kernel = int(p.get("kernel", _DEFAULT_KERNEL.get(key.op, 1)))
    stride = int(p.get("stride", max(1, round(h / ho)) if ho else 1))  # a stem's stride is its size ratio
    return BlockSpec(key.op, h, w, cin, ho, wo, cout, kernel, stride, mid, squeeze_channels(key, mid),
                     int(p.get("groups", 1)), bool(p.get("idskip", 0)))


def squeeze_channels(key: BlockKey, channels: int) -> int:
    """The SE squeeze width of a block on ``channels`` channels (0: no SE), one reading for every reader.

    ``se:1`` is Once-for-All's flag (squeeze = channels/4 rounded to 8, ``layers.se_channels``);
    a larger value is the width itself (MnasNet's keys). The analytic costs, ``build_block`` and
    the latency cost model (``latency_predictors.operators``) all read ``se`` through here.
    """
    se = int(dict(key.params).get("se", 0))
    return se_channels(channels) if se == 1 else se


def mbconv_key(size: int, cin: int, cout: int, mid: int, kernel: int, stride: int, residual: bool,
               ratio: int | None = None) -> BlockKey:
    """An ``expanded_conv`` key: ProxylessNAS dialect when ``ratio`` is given, else OFA's (se:0, hs:0)."""
    so = down(size, stride)
    common = (("kernel", kernel), ("stride", stride), ("idskip", int(residual)))
    if ratio is not None:
        return BlockKey("expanded_conv", (size, size, cin), (so, so, cout), (("expand", ratio),) + common)
    return BlockKey("expanded_conv", (size, size, cin), (so, so, cout),
                    (("expand", mid),) + common + (("se", 0), ("hs", 0)))


def stem_key(r: int, width: int) -> BlockKey:
    """The ReLU 3x3 stride-2 stem conv on an r x r RGB input."""
    s = down(r, 2)
    return BlockKey("Conv", (r, r, 3), (s, s, width), (("kernel", 3), ("hs", 0)))


def head_keys(size: int, cin: int, width: int, n_classes: int) -> list[BlockKey]:
    """The ReLU head on a size x size x cin input: 1x1 conv to ``width``, global pool, classifier."""
    return [BlockKey("Conv_1", (size, size, cin), (size, size, width), (("kernel", 1), ("hs", 0))),
            BlockKey("AvgPool2D", (size, size, width), (1, 1, width)),
            BlockKey("Logits", (1, 1, width), (n_classes,))]


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
    """[grouped 1x1 expand -> shuffle] -> kxk depthwise -> [SE] -> 1x1 projection (+ identity).

    Without groups and SE its modules and state-dict names are those of ``layers.MBConv``.
    """

    def __init__(self, cin: int, cout: int, mid: int, kernel: int, stride: int, squeeze: int = 0,
                 residual: bool = False, groups: int = 1, act: str = "relu"):
        super().__init__()
        has_expand = mid != cin or groups > 1
        self.expand = ConvBNAct(cin, mid, 1, groups=groups, act=act) if has_expand else None
        self.shuffle = ChannelShuffle(groups) if groups > 1 else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act)
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
    """A plain kxk conv -> BN -> act, optionally gated by SE, optionally with an identity."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, squeeze: int = 0,
                 residual: bool = False, act: str = "relu"):
        super().__init__()
        self.conv = ConvBNAct(cin, cout, kernel, stride, act=act)
        self.se = SqueezeExciteSigmoid(cout, squeeze) if squeeze else None
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.se is not None:
            y = self.se(y)
        return x + y if self.residual else y


class GlobalPool(nn.Module):
    """The ``AvgPool2D`` block: global mean, keeping the 1x1 spatial dims."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class Classifier(nn.Module):
    """The ``Logits`` block: [global average pool], dropout, linear classifier.

    ``pool=False`` for an input already pooled to 1x1 (after an ``AvgPool2D`` block).
    """

    def __init__(self, cin: int, n_classes: int, dropout: float = 0.0, pool: bool = True):
        super().__init__()
        self.pool = pool
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool:
            x = x.mean((2, 3))
        return self.linear(self.dropout(torch.flatten(x, 1)))


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


def _unknown(key: BlockKey) -> UserError:
    return UserError(f"block {key}: unknown op {key.op!r} for a mobile chain net")


def block_macs_params(key: BlockKey) -> tuple[int, int]:
    """MACs (convs and linear layers; biases not counted) and parameters (BN included) of one block."""
    b = parse(key)
    h, w, cin, ho, wo, cout, k = b.h, b.w, b.cin, b.ho, b.wo, b.cout, b.kernel
    if key.op in ("Conv", "Conv_1"):
        return ho * wo * k * k * cin * cout, k * k * cin * cout + 2 * cout
    if key.op == "expanded_conv":
        mid, g, sq = b.mid, b.groups, b.squeeze
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
        sq = b.squeeze
        macs, params = ho * wo * k * k * cin * cout, k * k * cin * cout + 2 * cout
        if sq:
            macs += 2 * cout * sq
            params += 2 * cout * sq + sq + cout
        return macs, params
    if key.op in ("AvgPool2D", "skip"):
        return 0, 0
    if key.op == "Logits":
        return cin * cout, cin * cout + cout
    raise _unknown(key)


def build_block(key: BlockKey, act: str = "relu", dropout: float = 0.0) -> tuple[nn.Module, tuple[int, ...]]:
    """A module computing one block (activation ``act`` throughout), and its (C, H, W) input shape.

    ``dropout`` is the ``Logits`` block's dropout rate before the classifier.
    """
    b = parse(key)
    shape = (b.cin, b.h, b.w)
    if key.op in ("Conv", "Conv_1"):
        return ConvBNAct(b.cin, b.cout, b.kernel, b.stride, act=act), shape
    if key.op == "expanded_conv":
        return InvertedBottleneck(b.cin, b.cout, b.mid, b.kernel, b.stride, b.squeeze, b.residual, b.groups,
                                  act), shape
    if key.op == "regular_conv":
        return RegularConv(b.cin, b.cout, b.kernel, b.stride, b.squeeze, b.residual, act), shape
    if key.op == "AvgPool2D":
        return GlobalPool(), shape
    if key.op == "Logits":
        return Classifier(b.cin, b.cout, dropout, pool=b.h * b.w > 1), shape
    if key.op == "skip":
        return nn.Identity(), shape
    raise _unknown(key)


class MobileBlocksMixin:
    """A space built of this module's blocks: their analytic costs and ``build_block``.

    ``act`` is the activation of every block, ``dropout`` the classifier's. Listed before
    ``ChainSpace`` or ``SearchSpace`` in a space's bases.
    """

    act = "relu"
    dropout = 0.0

    def block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        return self._block_costs

    @cached_property
    def _block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        costs = np.array([block_macs_params(k) for k in self.block_keys()], dtype=np.float64)
        return costs[:, 0], costs[:, 1]

    def build_block(self, key: BlockKey) -> tuple[nn.Module, tuple[int, ...]]:
        return build_block(key, self.act, self.dropout)


class MobileChainMixin(MobileBlocksMixin):
    """A ``SearchSpace`` of this module's blocks whose last dim is the input resolution ``r``.

    Adds ``build`` (a ``ChainNet`` of the arch's blocks), ``input_shape`` / ``resolution`` read
    off ``r`` (``resolutions``: its choices, ``search_resolutions``: those searches sample), and
    ``block_keys`` / ``searched_block_ids`` from the space's ``_tables``, whose first entry is the
    block list and whose ``_tables_per_res`` entry lists each resolution's block ids.
    """

    resolutions: tuple[int, ...] = ()
    search_resolutions: tuple[int, ...] = ()
    _tables_per_res: int  # index of the per-resolution block ids in ``_tables``

    def block_keys(self) -> list[BlockKey]:
        return self._tables[0]

    def searched_block_ids(self, resolutions: Sequence[int] | None = None) -> np.ndarray:
        """Every block at the searched resolutions (default ``search_resolutions``)."""
        res = self.search_resolutions if resolutions is None else resolutions
        for r in res:
            if r not in self.resolutions:
                raise UserError(f"resolution {r} is not allowed; allowed: {', '.join(map(str, self.resolutions))}")
        per_res = self._tables[self._tables_per_res]
        return np.concatenate([per_res[self.resolutions.index(r)] for r in res])

    def build(self, arch: Arch) -> ChainNet:
        return ChainNet.of_keys(self.blocks(arch), self.build_block)

    def input_shape(self, arch: Arch) -> tuple[int, int, int]:
        r = self.validate(arch)["r"]
        return (3, r, r)

    def resolution(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.resolutions)[np.asarray(X)[:, -1]]


class BlockIndex:
    """Numbers distinct BlockKeys as a space's tables meet them, and which ids one pass used.

    ``index(key)`` gives the key's id (new keys are appended to ``keys``); ``used`` collects the
    ids met since the last ``start_pass()`` (per resolution, equal blocks recur).
    """

    def __init__(self):
        self.keys: list[BlockKey] = []
        self._ids: dict[BlockKey, int] = {}
        self.used: set[int] = set()

    def __call__(self, key: BlockKey) -> int:
        i = self._ids.get(key)
        if i is None:
            i = self._ids[key] = len(self.keys)
            self.keys.append(key)
        self.used.add(i)
        return i

    def start_pass(self) -> None:
        self.used.clear()

    def pass_ids(self) -> np.ndarray:
        return np.array(sorted(self.used))
