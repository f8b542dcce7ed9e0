"""FBNet's layer-wise space (Wu et al., CVPR 2019, arXiv 1812.03443): ``fbnet``.

A fixed macro skeleton (the paper's Table 1): a 16-channel 3x3 stride-2 stem, 22 searchable
layers in 7 stages of widths 16, 24, 32, 64, 112, 184, 352 (1, 4, 4, 4, 4, 4, 1 layers; the first
layer of the 24/32/64/184 stages has stride 2), a 1x1 conv to 1984 channels, global pool and
classifier. Each layer picks one of 9 candidates: ``k{3,5}_e{1,3,6}`` (inverted bottleneck with
depthwise kernel k and expansion e; at e1 no expansion conv: a depthwise-separable block),
``k{3,5}_e1_g2`` (expansion 1 with grouped 1x1 convs, 2 groups, and a channel shuffle between
them) and ``skip``. A skip cannot change a tensor's shape, so the six layers that change width or
stride offer the other 8.

An arch is ``{"layers": [22 candidate names], "head": 1984, "r": 224}``. ``head`` may be left out
(1984); 1504 builds FBNet-A as released. Resolutions 96..224 step 32 build and are priced; searches
sample 224 and head 1984.
"""

from __future__ import annotations

from functools import cached_property
from typing import Sequence

import numpy as np
from torch import nn

from ..base import Arch, Dim, SearchSpace, require_list
from ..blocks import BlockKey
from ..errors import InvalidArchError, UserError
from ..chain import ChainNet
from ..layers import ConvBNAct
from ..mobile_blocks import BlockIndex, MixedOp, MobileChainMixin, down, head_keys, stem_key
from ..registry import register_space
from .published import PUBLISHED_ARCHS

STEM = 16
# (width, layers, stride of the first layer) per stage: the paper's Table 1.
STAGES = ((16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1))
N_LAYERS = sum(n for _, n, _ in STAGES)  # 22
HEADS = (1984, 1504)
N_CLASSES = 1000
CANDIDATES = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
RESOLUTIONS = (96, 128, 160, 192, 224)
SEARCH_RESOLUTIONS = (224,)


def parse_candidate(name: str) -> tuple[int, int, int]:
    """(kernel, expansion, groups) of a candidate name such as ``k5_e1_g2``."""
    parts = name.split("_")
    return int(parts[0][1:]), int(parts[1][1:]), int(parts[2][1:]) if len(parts) > 2 else 1


def layer_layout() -> list[tuple[int, int, int]]:
    """(input width, output width, stride) of each of the 22 searchable layers."""
    out, cin = [], STEM
    for cout, n, stride in STAGES:
        for j in range(n):
            out.append((cin, cout, stride if j == 0 else 1))
            cin = cout
    return out


class FBNetSpace(MobileChainMixin, SearchSpace):
    """FBNet's 22-layer space with 9 candidate blocks per layer (Wu et al., CVPR 2019)."""

    version = "1"
    resolutions, search_resolutions = RESOLUTIONS, SEARCH_RESOLUTIONS
    _tables_per_res = 4  # per_res in ``_tables``

    def __init__(self):
        self.layout = layer_layout()
        self.layer_candidates = [CANDIDATES if (cin == cout and s == 1) else CANDIDATES[:-1]
                              for cin, cout, s in self.layout]

    # ---- schema ---------------------------------------------------------------------------
    @cached_property
    def dims(self) -> list[Dim]:
        return ([Dim(f"layers[{i}]", c) for i, c in enumerate(self.layer_candidates)]
                + [Dim("head", HEADS, HEADS[:1]), Dim("r", RESOLUTIONS, SEARCH_RESOLUTIONS)])

    def to_values(self, arch: Arch) -> list:
        unknown = set(arch) - {"layers", "head", "r"}
        if unknown:
            raise InvalidArchError(f"unknown field(s) {', '.join(sorted(unknown))}; allowed: layers, head, r")
        layers = require_list(arch, "layers", N_LAYERS, "candidate names", f"allowed: {', '.join(CANDIDATES)}")
        if "r" not in arch:
            raise InvalidArchError(f"r: missing; allowed: {', '.join(map(str, RESOLUTIONS))}")
        r = arch["r"]
        if isinstance(r, (list, tuple)):
            if len(r) != 1:
                raise InvalidArchError(f"r: expected one resolution, got {len(r)} values; "
                                   f"allowed: {', '.join(map(str, RESOLUTIONS))}")
            r = r[0]
        return [*layers, arch.get("head", HEADS[0]), r]

    def from_values(self, values: Sequence) -> Arch:
        return {"layers": [str(v) for v in values[:N_LAYERS]], "head": int(values[N_LAYERS]),
                "r": int(values[N_LAYERS + 1])}

    def size(self) -> int:
        out = len(SEARCH_RESOLUTIONS)
        for c in self.layer_candidates:
            out *= len(c)
        return out

    def published(self, name: str) -> Arch:
        """A published net as an arch of this space: ``fbnet-a``, ``fbnet-b``, ``fbnet-c``."""
        if name not in PUBLISHED_ARCHS:
            raise UserError(f"unknown published net {name!r}; known: {', '.join(sorted(PUBLISHED_ARCHS))}")
        return self.validate(PUBLISHED_ARCHS[name])

    # ---- blocks and costs -----------------------------------------------------------------
    def layer_key(self, i: int, candidate: str, resolution: int) -> BlockKey | None:
        """The block key of layer i running one candidate at an input resolution (None: skip)."""
        if candidate == "skip":
            return None
        size = down(resolution, 2)
        for cin, cout, s in self.layout[:i]:
            size = down(size, s)
        cin, cout, s = self.layout[i]
        k, e, g = parse_candidate(candidate)
        so = down(size, s)
        params = [("expand", cin * e), ("kernel", k), ("stride", s), ("idskip", int(s == 1 and cin == cout)),
                  ("se", 0), ("hs", 0)]
        if g > 1:
            params.append(("groups", g))
        return BlockKey("expanded_conv", (size, size, cin), (so, so, cout), tuple(params))

    @cached_property
    def _tables(self):
        idx = BlockIndex()  # equal layers of a stage recur within a resolution

        R = len(RESOLUTIONS)
        stem = np.empty(R, dtype=np.int64)
        layer = np.full((R, N_LAYERS, len(CANDIDATES)), -1, dtype=np.int64)
        head = np.empty((R, len(HEADS), 3), dtype=np.int64)
        per_res = []
        for ri, r in enumerate(RESOLUTIONS):
            idx.start_pass()
            size = down(r, 2)
            stem[ri] = idx(stem_key(r, STEM))
            for i, choices in enumerate(self.layer_candidates):
                for c in choices:
                    key = self.layer_key(i, c, r)
                    if key is not None:
                        layer[ri, i, CANDIDATES.index(c)] = idx(key)
                size = down(size, self.layout[i][2])
            cin = self.layout[-1][1]
            for hi, h in enumerate(HEADS):
                head[ri, hi] = [idx(k) for k in head_keys(size, cin, h, N_CLASSES)]
            per_res.append(idx.pass_ids())
        # Dims index into each layer's own choices; map them onto CANDIDATES' columns.
        cand_col = np.full((N_LAYERS, len(CANDIDATES)), -1, dtype=np.int64)
        for i, choices in enumerate(self.layer_candidates):
            cand_col[i, :len(choices)] = [CANDIDATES.index(c) for c in choices]
        return idx.keys, stem, layer, head, per_res, cand_col

    def block_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        _, stem, layer, head, _, cand_col = self._tables
        ri = X[:, -1]
        out = np.empty((len(X), 1 + N_LAYERS + 3), dtype=np.int64)
        out[:, 0] = stem[ri]
        cols = cand_col[np.arange(N_LAYERS)[None, :], X[:, :N_LAYERS]]
        out[:, 1:1 + N_LAYERS] = layer[ri[:, None], np.arange(N_LAYERS)[None, :], cols]
        out[:, 1 + N_LAYERS:] = head[ri, X[:, N_LAYERS]]
        return out

    # ---- all candidates at once (DNAS) ------------------------------------------------------
    def mixed_layer(self, i: int, resolution: int = 224) -> MixedOp:
        """Layer i with every candidate it allows, computing all their outputs (FBNet's DNAS)."""
        if not 0 <= i < N_LAYERS:
            raise UserError(f"layer {i} is out of range; allowed: 0..{N_LAYERS - 1}")
        if resolution not in RESOLUTIONS:
            raise UserError(f"resolution {resolution} is not allowed; allowed: {', '.join(map(str, RESOLUTIONS))}")
        mods = []
        for c in self.layer_candidates[i]:
            key = self.layer_key(i, c, resolution)
            mods.append(self.build_block(key)[0] if key is not None else self.build_block(
                BlockKey("skip", (1, 1, 1), (1, 1, 1)))[0])
        return MixedOp(mods, list(self.layer_candidates[i]))

    def mixed_network(self, resolution: int = 224, head: int = HEADS[0]) -> nn.ModuleDict:
        """Stem, the 22 mixed layers and the head: the modules an FBNet supernet is made of."""
        size = down(resolution, 2)
        for cin, cout, s in self.layout:
            size = down(size, s)
        tail = head_keys(size, self.layout[-1][1], head, N_CLASSES)
        return nn.ModuleDict({
            "stem": ConvBNAct(3, STEM, 3, 2),
            "layers": nn.ModuleList(self.mixed_layer(i, resolution) for i in range(N_LAYERS)),
            "head": ChainNet.of_keys(tail, self.build_block),
        })


@register_space("fbnet")
def _fbnet() -> FBNetSpace:
    return FBNetSpace()
