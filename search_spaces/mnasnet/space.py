"""MnasNet's factorized hierarchical space (Tan et al., CVPR 2019, arXiv 1807.11626): ``mbconv``.

The network is MobileNetV2's skeleton (a 32-channel stride-2 stem, 7 blocks, a 1280-channel 1x1
head conv, global pool, classifier) and each block searches its own:

- ``op``: ``conv`` (regular kxk conv), ``sepconv`` (depthwise-separable: kxk depthwise, 1x1
  projection), ``mbconv3`` / ``mbconv6`` (inverted bottleneck, expansion 3 or 6);
- ``kernel`` 3 or 5; ``se`` 0 or 0.25 (MnasNet's convention: the squeeze width is
  ``max(1, int(block input channels * 0.25))``; SE acts after the depthwise conv, or on a regular
  conv's output); ``skip`` ``none`` or ``identity`` (a residual on every layer whose stride is 1
  and whose input and output widths agree);
- ``layers``: MobileNetV2's count -1, 0 or +1 (a block of one layer may vanish), all identical;
- ``filters``: 0.75, 1.0 or 1.25 times MobileNetV2's width, made divisible by 8.

An arch is ``{"blocks": [7 x {"op", "kernel", "se", "skip", "layers", "filters"}], "r": 224}``.
``layers_delta`` (-1/0/+1) and ``filter_mult`` (0.75/1.0/1.25) may stand for ``layers`` and
``filters``. The explicit widths also allow the published nets' off-grid widths (112 in block 5 of
MnasNet-A1, 192 in block 6 of MnasNet-B1) and resolutions 96..224 step 32: they build and are
priced, but searches sample only the grid at 224, where MnasNet searched.
"""

from __future__ import annotations

import itertools
from functools import cached_property
from typing import Sequence

import numpy as np

from ..base import Arch, Dim, SearchSpace, require_list
from ..blocks import BlockKey
from ..errors import InvalidArchError, UserError
from ..layers import make_divisible
from ..mobile_blocks import BlockIndex, MobileChainMixin, down, head_keys, stem_key
from ..registry import register_space
from .published import PUBLISHED_ARCHS

N_BLOCKS = 7
# MobileNetV2 (Sandler et al., CVPR 2018, Table 2): the skeleton MnasNet factorizes.
BASE_FILTERS = (16, 24, 32, 64, 96, 160, 320)
BASE_LAYERS = (1, 2, 3, 4, 3, 3, 1)
STRIDES = (1, 2, 2, 2, 1, 2, 1)
STEM, HEAD, N_CLASSES = 32, 1280, 1000

OPS = ("conv", "sepconv", "mbconv3", "mbconv6")
EXPAND = {"sepconv": 1, "mbconv3": 3, "mbconv6": 6}
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIPS = ("none", "identity")
FILTER_MULTS = (0.75, 1.0, 1.25)
LAYER_DELTAS = (-1, 0, 1)
# Widths of published nets off the 0.75/1.0/1.25 grid (block index -> widths).
EXTRA_FILTERS = {4: (112,), 5: (192,)}
RESOLUTIONS = (96, 128, 160, 192, 224)
SEARCH_RESOLUTIONS = (224,)

FIELDS = ("op", "kernel", "se", "skip", "layers", "filters")
N_FIELDS = len(FIELDS)
OP, KERNEL, SE, SKIP, LAYERS, FILTERS = range(N_FIELDS)


def grid_filters(b: int) -> tuple[int, ...]:
    return tuple(sorted({make_divisible(BASE_FILTERS[b] * m, 8) for m in FILTER_MULTS}))


def squeeze_width(cin: int, ratio: float) -> int:
    """MnasNet's SE squeeze width: the ratio of the block's input channels, at least 1."""
    return max(1, int(cin * ratio)) if ratio else 0


def layer_key(size: int, cin: int, cout: int, stride: int, op: str, kernel: int, se: float,
              residual: bool) -> BlockKey:
    """The block key of one layer of a block."""
    so = down(size, stride)
    sq = squeeze_width(cin, se)
    shape_in, shape_out = (size, size, cin), (so, so, cout)
    if op == "conv":
        return BlockKey("regular_conv", shape_in, shape_out,
                        (("kernel", kernel), ("stride", stride), ("idskip", int(residual)), ("se", sq), ("hs", 0)))
    return BlockKey("expanded_conv", shape_in, shape_out,
                    (("expand", cin * EXPAND[op]), ("kernel", kernel), ("stride", stride),
                     ("idskip", int(residual)), ("se", sq), ("hs", 0)))


class MnasNetSpace(MobileChainMixin, SearchSpace):
    """MnasNet's factorized hierarchical space on MobileNetV2's skeleton (Tan et al., CVPR 2019)."""

    version = "1"
    resolutions, search_resolutions = RESOLUTIONS, SEARCH_RESOLUTIONS
    _tables_per_res = 5  # per_res in ``_tables``

    def __init__(self):
        self.filter_choices = [tuple(sorted(set(grid_filters(b)) | set(EXTRA_FILTERS.get(b, ()))))
                               for b in range(N_BLOCKS)]
        self.depth_choices = [tuple(range(max(0, n - 1), n + 2)) for n in BASE_LAYERS]
        for b in range(N_BLOCKS):
            if 0 in self.depth_choices[b] and STRIDES[b] != 1:
                raise AssertionError("a block that may vanish must not change the resolution")
        self._filter_vals = [np.array(c) for c in self.filter_choices]
        self._layer_vals = [np.array(c) for c in self.depth_choices]
        self._base_filter_idx = [c.index(BASE_FILTERS[b]) for b, c in enumerate(self.filter_choices)]
        # Widths a block's input can have: the last non-empty block before it, or the stem.
        opts, self.cin_choices = {STEM}, []
        for b in range(N_BLOCKS):
            self.cin_choices.append(np.array(sorted(opts)))
            opts = set(self.filter_choices[b]) | (opts if 0 in self.depth_choices[b] else set())
        self.head_cin_choices = np.array(sorted(opts))
        self.max_layers = [max(c) for c in self.depth_choices]

    # ---- schema ---------------------------------------------------------------------------
    @cached_property
    def dims(self) -> list[Dim]:
        dims = []
        for b in range(N_BLOCKS):
            p = f"blocks[{b}]."
            dims += [Dim(p + "op", OPS), Dim(p + "kernel", KERNELS), Dim(p + "se", SE_RATIOS),
                     Dim(p + "skip", SKIPS), Dim(p + "layers", self.depth_choices[b]),
                     Dim(p + "filters", self.filter_choices[b], grid_filters(b))]
        return dims + [Dim("r", RESOLUTIONS, SEARCH_RESOLUTIONS)]

    def to_values(self, arch: Arch) -> list:
        unknown = set(arch) - {"blocks", "r"}
        if unknown:
            raise InvalidArchError(f"unknown field(s) {', '.join(sorted(unknown))}; allowed: blocks, r")
        blocks = require_list(arch, "blocks", N_BLOCKS, "block objects",
                              f"allowed fields per block: {', '.join(FIELDS)}")
        values = []
        for b, blk in enumerate(blocks):
            values += self._block_values(b, blk)
        if "r" not in arch:
            raise InvalidArchError(f"r: missing; allowed: {', '.join(map(str, RESOLUTIONS))}")
        r = arch["r"]
        if isinstance(r, (list, tuple)):
            if len(r) != 1:
                raise InvalidArchError(f"r: expected one resolution, got {len(r)} values; "
                                   f"allowed: {', '.join(map(str, RESOLUTIONS))}")
            r = r[0]
        return values + [r]

    def _block_values(self, b: int, blk) -> list:
        p = f"blocks[{b}]"
        if not isinstance(blk, dict):
            raise InvalidArchError(f"{p}: expected an object, got {type(blk).__name__}; "
                                   f"allowed fields: {', '.join(FIELDS)}")
        allowed = set(FIELDS) | {"layers_delta", "filter_mult"}
        unknown = set(blk) - allowed
        if unknown:
            raise InvalidArchError(f"{p}: unknown field(s) {', '.join(sorted(unknown))}; "
                                   f"allowed: {', '.join(FIELDS)}, layers_delta, filter_mult")
        blk = dict(blk)
        for explicit, relative, grid, to_value in (
                ("layers", "layers_delta", LAYER_DELTAS, lambda d: BASE_LAYERS[b] + d),
                ("filters", "filter_mult", FILTER_MULTS, lambda m: make_divisible(BASE_FILTERS[b] * m, 8))):
            if relative in blk:
                if explicit in blk:
                    raise InvalidArchError(f"{p}: both {explicit} and {relative} given; allowed: one of them")
                v = blk.pop(relative)
                if isinstance(v, bool) or v not in grid:
                    raise InvalidArchError(f"{p}.{relative}: {v!r} is not allowed; "
                                           f"allowed: {', '.join(map(str, grid))}")
                blk[explicit] = to_value(v)
        for f in FIELDS:
            if f not in blk:
                choices = self.dims[b * N_FIELDS + FIELDS.index(f)].choices
                raise InvalidArchError(f"{p}.{f}: missing; allowed: {', '.join(map(str, choices))}")
        return [blk[f] for f in FIELDS]

    def from_values(self, values: Sequence) -> Arch:
        blocks = []
        for b in range(N_BLOCKS):
            v = values[b * N_FIELDS:(b + 1) * N_FIELDS]
            blocks.append({"op": str(v[OP]), "kernel": int(v[KERNEL]), "se": float(v[SE]),
                           "skip": str(v[SKIP]), "layers": int(v[LAYERS]), "filters": int(v[FILTERS])})
        return {"blocks": blocks, "r": int(values[-1])}

    def _col(self, b: int, field: int) -> int:
        return b * N_FIELDS + field

    def _layers_filters(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        L = np.stack([self._layer_vals[b][X[:, self._col(b, LAYERS)]] for b in range(N_BLOCKS)], 1)
        F = np.stack([self._filter_vals[b][X[:, self._col(b, FILTERS)]] for b in range(N_BLOCKS)], 1)
        return L, F

    def _input_widths(self, L: np.ndarray, F: np.ndarray) -> np.ndarray:
        """(n, 7 + 1) input width of every block and of the head."""
        cin = np.full(len(L), STEM)
        out = np.empty((len(L), N_BLOCKS + 1), dtype=np.int64)
        for b in range(N_BLOCKS):
            out[:, b] = cin
            cin = np.where(L[:, b] > 0, F[:, b], cin)
        out[:, -1] = cin
        return out

    def canonical(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.int64, copy=True)
        L, F = self._layers_filters(X)
        cin = self._input_widths(L, F)
        for b in range(N_BLOCKS):
            empty = L[:, b] == 0
            for f in (OP, KERNEL, SE, SKIP):
                X[empty, self._col(b, f)] = 0
            X[empty, self._col(b, FILTERS)] = self._base_filter_idx[b]
            # The skip choice only matters where some layer can carry an identity.
            can_skip = (L[:, b] >= 2) | ((STRIDES[b] == 1) & (cin[:, b] == F[:, b]) & ~empty)
            X[~can_skip, self._col(b, SKIP)] = 0
        return X

    def size(self) -> int:
        """Distinct searched networks: a walk over the blocks tracking the input width."""
        per_layer = len(OPS) * len(KERNELS) * len(SE_RATIOS)
        counts = {STEM: 1}
        for b in range(N_BLOCKS):
            nxt: dict[int, int] = {}
            for cin, c in counts.items():
                for n in self.depth_choices[b]:
                    if n == 0:
                        nxt[cin] = nxt.get(cin, 0) + c
                        continue
                    for f in grid_filters(b):
                        skips = 2 if n >= 2 or (STRIDES[b] == 1 and cin == f) else 1
                        nxt[f] = nxt.get(f, 0) + c * per_layer * skips
            counts = nxt
        return sum(counts.values()) * len(SEARCH_RESOLUTIONS)

    # ---- published nets ---------------------------------------------------------------------
    def published(self, name: str) -> Arch:
        """A published net as an arch of this space: ``mnasnet-a1``, ``mnasnet-b1``, ``mobilenetv2``."""
        if name not in PUBLISHED_ARCHS:
            raise UserError(f"unknown published net {name!r}; known: {', '.join(sorted(PUBLISHED_ARCHS))}")
        return self.validate(PUBLISHED_ARCHS[name])

    # ---- blocks and costs -----------------------------------------------------------------
    @cached_property
    def _tables(self):
        idx = BlockIndex()  # the head's pool and logits recur within a resolution
        per_res: list[np.ndarray] = []

        R = len(RESOLUTIONS)
        stem = np.empty(R, dtype=np.int64)
        first = [np.empty((R, len(self.cin_choices[b]), len(OPS), len(KERNELS), len(SE_RATIOS), len(SKIPS),
                           len(self.filter_choices[b])), dtype=np.int64) for b in range(N_BLOCKS)]
        rep = [np.empty((R, len(OPS), len(KERNELS), len(SE_RATIOS), len(SKIPS), len(self.filter_choices[b])),
                        dtype=np.int64) for b in range(N_BLOCKS)]
        head = np.empty((R, len(self.head_cin_choices), 3), dtype=np.int64)
        choice_grid = list(itertools.product(enumerate(OPS), enumerate(KERNELS), enumerate(SE_RATIOS),
                                             enumerate(SKIPS)))
        for ri, r in enumerate(RESOLUTIONS):
            idx.start_pass()
            size = down(r, 2)
            stem[ri] = idx(stem_key(r, STEM))
            for b in range(N_BLOCKS):
                s = STRIDES[b]
                for (oi, op), (ki, k), (si, se), (ski, skip) in choice_grid:
                    for fi, f in enumerate(self.filter_choices[b]):
                        for ci, cin in enumerate(self.cin_choices[b]):
                            res = skip == "identity" and s == 1 and cin == f
                            first[b][ri, ci, oi, ki, si, ski, fi] = idx(
                                layer_key(size, cin, f, s, op, k, se, res))
                        rep[b][ri, oi, ki, si, ski, fi] = idx(
                            layer_key(down(size, s), f, f, 1, op, k, se, skip == "identity"))
                size = down(size, s)
            for hi, cin in enumerate(self.head_cin_choices):
                head[ri, hi] = [idx(k) for k in head_keys(size, cin, HEAD, N_CLASSES)]
            per_res.append(idx.pass_ids())
        return idx.keys, stem, first, rep, head, per_res

    @cached_property
    def n_slots(self) -> int:
        return 1 + sum(self.max_layers) + 3

    def block_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        _, stem, first, rep, head, _ = self._tables
        L, F = self._layers_filters(X)
        cin = self._input_widths(L, F)
        ri = X[:, -1]
        out = np.full((len(X), self.n_slots), -1, dtype=np.int64)
        out[:, 0] = stem[ri]
        col = 1
        for b in range(N_BLOCKS):
            op, k, se, sk, _, fi = (X[:, self._col(b, f)] for f in range(N_FIELDS))
            ci = np.searchsorted(self.cin_choices[b], cin[:, b])
            ids_first = first[b][ri, ci, op, k, se, sk, fi]
            ids_rep = rep[b][ri, op, k, se, sk, fi]
            for j in range(self.max_layers[b]):
                out[:, col + j] = np.where(L[:, b] > j, ids_first if j == 0 else ids_rep, -1)
            col += self.max_layers[b]
        hi = np.searchsorted(self.head_cin_choices, cin[:, -1])
        out[:, col:] = head[ri, hi]
        return out


@register_space("mbconv")
def _mbconv() -> MnasNetSpace:
    return MnasNetSpace()
