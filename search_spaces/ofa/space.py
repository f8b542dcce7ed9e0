"""Once-for-All's MobileNetV3 space (Cai et al., ICLR 2020), widths 1.2 (``ofa``) and 1.0 (``ofa-w1.0``).

Reduced configurations for small data (``ofa-small``) are the same space with other parameters:
width multiplier, number of classes, stem stride and the resolutions (``OFASpace.variant``).

Five elastic stages of up to four inverted-residual layers after a fixed stem and first block.
Each layer picks kernel {3, 5, 7} and expand ratio {3, 4, 6}; each stage a depth {2, 3, 4}
(its first d layers run); the input resolution is searched over 128..224 step 4.

Archs use Once-for-All's own format ``{"ks": [20], "e": [20], "d": [5], "r": [1]}``. Slots past a
stage's depth do not change the network, so they are canonicalised to kernel 3 / expand 3.
"""

from __future__ import annotations

from functools import cached_property
from typing import Sequence

import numpy as np
from torch import nn

from ..base import Arch, Dim, SearchSpace
from ..blocks import BlockKey
from ..errors import InvalidArchError, UserError
from ..layers import ConvBNAct, MBConv, make_divisible
from ..mobile_blocks import Classifier, GlobalPool, down
from ..mobile_blocks import block_macs_params as mobile_block_macs_params
from ..registry import register_space
from .layout import (BASE_WIDTHS, BLOCKS_PER_RESOLUTION, DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, N_CLASSES,  # noqa: F401
                     N_SLOTS, N_STAGES, RESOLUTIONS, SEARCH_RESOLUTIONS, STAGE_ACTS, STAGE_SE, STAGE_STRIDES,
                     Widths, widths_for)
from .model import LayerSpec, NetSpec, OFAMobileNetV3

# per depth choice: which of a stage's MAX_DEPTH slots run
_SLOTS_RUN = np.arange(MAX_DEPTH)[None, :] < np.asarray(DEPTHS)[:, None]
# canonical's mask per combination of the stages' depth choices (code = digits base len(DEPTHS)):
# 1 on the ks/e dims of running slots and on the depth and resolution dims, 0 elsewhere
_DEPTH_CODE = len(DEPTHS) ** np.arange(N_STAGES - 1, -1, -1)
_KEEP = np.ones((len(DEPTHS) ** N_STAGES, 2 * N_SLOTS + N_STAGES + 1), np.int64)
_KEEP[:, :N_SLOTS] = _SLOTS_RUN[(np.arange(len(_KEEP))[:, None] // _DEPTH_CODE) % len(DEPTHS)].reshape(-1, N_SLOTS)
_KEEP[:, N_SLOTS:2 * N_SLOTS] = _KEEP[:, :N_SLOTS]


class OFASpace(SearchSpace):
    """Once-for-All MobileNetV3 space at one width multiplier."""

    version = "1"
    description = ""  # set per width in __init__

    def __init__(self, width_mult: float = 1.2, n_classes: int = N_CLASSES, stem_stride: int = 2,
                 resolutions: Sequence[int] | None = None, search_resolutions: Sequence[int] | None = None):
        if not width_mult > 0 or n_classes < 1 or stem_stride not in (1, 2):
            raise UserError(f"ofa space parameters: width_mult > 0, n_classes >= 1, stem_stride 1 or 2; "
                            f"got {width_mult}, {n_classes}, {stem_stride}")
        self.width_mult = width_mult
        self.n_classes = int(n_classes)
        self.stem_stride = int(stem_stride)
        self.resolutions = tuple(int(r) for r in (RESOLUTIONS if resolutions is None else resolutions))
        self.search_resolutions = tuple(int(r) for r in (SEARCH_RESOLUTIONS if search_resolutions is None
                                                         else search_resolutions))
        if not self.resolutions or not set(self.search_resolutions) <= set(self.resolutions):
            raise UserError(f"ofa space parameters: search resolutions {self.search_resolutions} must be "
                            f"among the resolutions {self.resolutions[:3]}...")
        self.widths = widths_for(width_mult)
        self.description = f"Once-for-All MobileNetV3, width {width_mult} (Cai et al., ICLR 2020)"
        if (n_classes, stem_stride, resolutions, search_resolutions) != (N_CLASSES, 2, None, None):
            self.description += (f"; {self.n_classes} classes, stem stride {self.stem_stride}, "
                                 f"searched resolutions {self.search_resolutions}")

    def constructor_params(self) -> dict:
        """Every constructor argument (JSON-safe): ``type(self)(**constructor_params())`` rebuilds this space."""
        return {"width_mult": float(self.width_mult), "n_classes": self.n_classes, "stem_stride": self.stem_stride,
                "resolutions": list(self.resolutions), "search_resolutions": list(self.search_resolutions)}

    def _registered(self) -> "OFASpace":
        """The registered space of this name, whose parameters ``space_params`` is relative to."""
        from ..registry import get_space, list_spaces

        return get_space(self.name) if self.name in list_spaces() else self

    def space_params(self) -> dict:
        """The parameters that differ from the registered space of this name (``{}`` for it itself).

        Arch files and checkpoints record them; ``get_space(NAME, params)`` (``with_params``) and
        ``variant(**params)`` rebuild this very space from the registered one.
        """
        base = self._registered()
        if base is self:
            return {}
        ref = base.constructor_params()
        return {k: v for k, v in self.constructor_params().items() if ref[k] != v}

    def with_params(self, params: dict) -> "OFASpace":
        return self._registered().variant(**params) if params else self._registered()

    def variant(self, **changes) -> "OFASpace":
        """The same space (same name) with some parameters changed, e.g. ``n_classes=10`` for a dataset."""
        full = self.constructor_params()
        unknown = set(changes) - set(full)
        if unknown:
            raise UserError(f"unknown ofa space parameter(s) {', '.join(sorted(unknown))}; "
                            f"accepted: {', '.join(full)}")
        merged = {**full, **changes}
        if merged == full:
            return self
        out = type(self)(**merged)
        out.name = self.name
        return out

    # ---- schema ---------------------------------------------------------------------------
    @cached_property
    def dims(self) -> list[Dim]:
        return ([Dim(f"ks[{i}]", KERNELS) for i in range(N_SLOTS)]
                + [Dim(f"e[{i}]", EXPANDS) for i in range(N_SLOTS)]
                + [Dim(f"d[{i}]", DEPTHS) for i in range(N_STAGES)]
                + [Dim("r", self.resolutions, self.search_resolutions)])

    def to_values(self, arch: Arch) -> list:
        unknown = set(arch) - {"ks", "e", "d", "r", "wid"}
        if unknown:
            raise InvalidArchError(f"unknown field(s) {', '.join(sorted(unknown))}; expected ks, e, d, r")
        for name, n in (("ks", N_SLOTS), ("e", N_SLOTS), ("d", N_STAGES)):
            if name not in arch:
                raise InvalidArchError(f"{name}: missing; expected a list of {n} ints")
            v = arch[name]
            if not isinstance(v, (list, tuple)) or len(v) != n:
                got = f"{len(v)} values" if isinstance(v, (list, tuple)) else type(v).__name__
                raise InvalidArchError(f"{name}: expected a list of {n} ints, got {got}")
        if "r" not in arch:
            raise InvalidArchError("r: missing; expected an int or [int] resolution")
        r = arch["r"]
        if isinstance(r, (list, tuple)):
            if len(r) != 1:
                raise InvalidArchError(f"r: expected one resolution, got {len(r)} values")
            r = r[0]
        return [*arch["ks"], *arch["e"], *arch["d"], r]

    def from_values(self, values: Sequence) -> Arch:
        v = [int(x) for x in values]
        return {"ks": v[:N_SLOTS], "e": v[N_SLOTS:2 * N_SLOTS],
                "d": v[2 * N_SLOTS:2 * N_SLOTS + N_STAGES], "r": [v[-1]]}

    def active_slots(self, X: np.ndarray) -> np.ndarray:
        """(n, 20) bool: which layer slots run, given each stage's depth."""
        # one lookup per stage (depth choice -> its 4 slots' mask): search loops canonicalise
        # hundreds of thousands of rows, and building the mask per call was most of the cost
        return _SLOTS_RUN[np.asarray(X)[:, 2 * N_SLOTS:2 * N_SLOTS + N_STAGES]].reshape(len(X), N_SLOTS)

    def canonical(self, X: np.ndarray) -> np.ndarray:
        # Slots that do not run take choice 0: one (n, n_dims) 0/1 mask looked up by the depth
        # choices of all stages together (3**5 rows), one multiply. Search loops canonicalise
        # every proposal, and this is 3x faster than masking the two slot blocks in place.
        X = np.asarray(X, dtype=np.int64)
        return X * _KEEP[X[:, 2 * N_SLOTS:2 * N_SLOTS + N_STAGES] @ _DEPTH_CODE]

    def size(self) -> int:
        per_stage = sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS)
        return per_stage ** N_STAGES * len(self.search_resolutions)

    def size_per_resolution(self) -> int:
        return self.size() // len(self.search_resolutions)

    # ---- network layout -------------------------------------------------------------------
    def net_spec(self, arch: Arch) -> NetSpec:
        arch = self.validate(arch)
        w = self.widths
        layers = [LayerSpec(w.stem, w.stem, w.stem, 3, 1, "relu", False, True)]
        cin = w.stem
        for s in range(N_STAGES):
            for j in range(arch["d"][s]):
                i = s * MAX_DEPTH + j
                stride = STAGE_STRIDES[s] if j == 0 else 1
                cout = w.stages[s]
                mid = make_divisible(round(cin * arch["e"][i]), 8)
                layers.append(LayerSpec(cin, cout, mid, arch["ks"][i], stride, STAGE_ACTS[s],
                                        STAGE_SE[s], stride == 1 and cin == cout))
                cin = cout
        return NetSpec(w.stem, tuple(layers), w.final_expand, w.feature_mix, self.n_classes)

    def build(self, arch: Arch, dropout: float = 0.1) -> OFAMobileNetV3:
        spec = self.net_spec(arch)
        return OFAMobileNetV3(NetSpec(spec.stem, spec.layers, spec.final_expand, spec.feature_mix,
                                      spec.n_classes, dropout), stem_stride=self.stem_stride)

    def supernet(self, **kw):
        """The weight-shared supernet (``OFASupernet``): ``set_active(arch)``, ``forward``, ``extract``."""
        from .supernet import OFASupernet

        return OFASupernet(self, **kw)

    def input_shape(self, arch: Arch) -> tuple[int, int, int]:
        r = self.validate(arch)["r"][0]
        return (3, r, r)

    def resolution(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.resolutions)[np.asarray(X)[:, -1]]

    # ---- blocks and costs -----------------------------------------------------------------
    def _blocks_at(self, r: int) -> list[BlockKey]:
        """The 96 distinct blocks at resolution r, in the local order ``block_matrix`` indexes."""
        w = self.widths
        f = down(r, self.stem_stride)
        # The stride is named only when it is not Once-for-All's 2, so the released tables' keys still match.
        stem_params = () if self.stem_stride == 2 else (("stride", self.stem_stride),)
        keys = [BlockKey("Conv", (r, r, 3), (f, f, w.stem), stem_params),
                _mb((f, f, w.stem), (f, f, w.stem), w.stem, 3, 1, True, False, "relu")]
        cin = w.stem
        for s in range(N_STAGES):
            cout, stride = w.stages[s], STAGE_STRIDES[s]
            fo = down(f, stride)
            for first in (True, False):
                c_in, size_in, st = (cin, f, stride) if first else (cout, fo, 1)
                for k in KERNELS:
                    for e in EXPANDS:
                        mid = make_divisible(round(c_in * e), 8)
                        keys.append(_mb((size_in, size_in, c_in), (fo, fo, cout), mid, k, st,
                                        st == 1 and c_in == cout, STAGE_SE[s], STAGE_ACTS[s]))
            cin, f = cout, fo
        keys += [BlockKey("Conv_1", (f, f, cin), (f, f, w.final_expand)),
                 BlockKey("AvgPool2D", (f, f, w.final_expand), (1, 1, w.final_expand)),
                 BlockKey("Conv_2", (1, 1, w.final_expand), (1, 1, w.feature_mix)),
                 BlockKey("Logits", (1, 1, w.feature_mix), (self.n_classes,))]
        assert len(keys) == BLOCKS_PER_RESOLUTION
        return keys

    def block_keys(self) -> list[BlockKey]:
        return self._block_keys

    @cached_property
    def _block_keys(self) -> list[BlockKey]:
        return [k for r in self.resolutions for k in self._blocks_at(r)]

    def searched_block_ids(self, resolutions: Sequence[int] | None = None) -> np.ndarray:
        res = self.search_resolutions if resolutions is None else resolutions
        for r in res:
            if r not in self.resolutions:
                raise UserError(f"resolution {r} is not allowed; allowed: "
                                f"{self.resolutions[0]}..{self.resolutions[-1]} ({len(self.resolutions)} values)")
        return np.concatenate([self.resolutions.index(r) * BLOCKS_PER_RESOLUTION
                               + np.arange(BLOCKS_PER_RESOLUTION) for r in res])

    @cached_property
    def _slot_layout(self) -> np.ndarray:
        layer = np.tile(np.arange(MAX_DEPTH), N_STAGES)
        stage = np.repeat(np.arange(N_STAGES), MAX_DEPTH)
        return 2 + stage * 18 + np.where(layer == 0, 0, 9)

    def block_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        base = X[:, -1] * BLOCKS_PER_RESOLUTION
        local = self._slot_layout[None, :] + X[:, :N_SLOTS] * len(EXPANDS) + X[:, N_SLOTS:2 * N_SLOTS]
        ids = np.empty((len(X), 2 + N_SLOTS + 4), dtype=np.int64)
        ids[:, 0] = base
        ids[:, 1] = base + 1
        ids[:, 2:2 + N_SLOTS] = np.where(self.active_slots(X), base[:, None] + local, -1)
        ids[:, 2 + N_SLOTS:] = base[:, None] + np.arange(92, 96)[None, :]
        return ids

    def block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        return self._block_costs

    @cached_property
    def _block_costs(self) -> tuple[np.ndarray, np.ndarray]:
        costs = np.array([block_macs_params(k) for k in self._block_keys], dtype=np.float64)
        return costs[:, 0], costs[:, 1]

    def build_block(self, key: BlockKey) -> tuple[nn.Module, tuple[int, ...]]:
        return build_block(key)

    # ---- Once-for-All's net.config layer lists ---------------------------------------------
    def from_net_config(self, net_config: dict, image_size: int) -> Arch:
        """The arch of a released Once-for-All ``net.config`` (with run.config's image size)."""
        from .netconfig import net_config_to_arch

        return net_config_to_arch(self, net_config, image_size)

    def net_config_space(self, net_config: dict) -> "OFASpace":
        """The space a net config's arch belongs to: this one (``from_net_config`` checks the widths)."""
        return self

    def to_net_config(self, arch: Arch) -> dict:
        from .netconfig import arch_to_net_config

        return arch_to_net_config(self, arch)


def _mb(shape_in, shape_out, mid, k, stride, idskip, se, act) -> BlockKey:
    return BlockKey("expanded_conv", tuple(shape_in), tuple(shape_out),
                    (("expand", mid), ("kernel", k), ("stride", stride), ("idskip", int(idskip)),
                     ("se", int(se)), ("hs", int(act == "h_swish"))))


def block_macs_params(key: BlockKey) -> tuple[int, int]:
    """MACs (convs and linear layers, biases not counted) and parameters of one block."""
    h, w, cin = key.input
    out = key.output
    if key.op == "Conv":
        ho, wo, c = out
        return ho * wo * 9 * cin * c, 9 * cin * c + 2 * c
    if key.op == "expanded_conv":  # the mobile blocks' reading (middle width, the se flag)
        return mobile_block_macs_params(key)
    if key.op == "Conv_1":
        ho, wo, c = out
        return ho * wo * cin * c, cin * c + 2 * c
    if key.op == "AvgPool2D":
        return 0, 0
    if key.op == "Conv_2":
        return cin * out[2], cin * out[2]
    if key.op == "Logits":
        return cin * out[0], cin * out[0] + out[0]
    raise UserError(f"unknown block op {key.op!r} for the ofa space")


def build_block(key: BlockKey) -> tuple[nn.Module, tuple[int, ...]]:
    """A module computing one block on its own, and its (C, H, W) input shape."""
    h, w, cin = key.input
    shape = (cin, h, w)
    if key.op == "Conv":
        stride = dict(key.params).get("stride", 2)
        return ConvBNAct(cin, key.output[2], 3, stride, act="h_swish"), shape
    if key.op == "expanded_conv":
        act = "h_swish" if key.param("hs") else "relu"
        return MBConv(cin, key.output[2], key.param("expand"), key.param("kernel"), key.param("stride"),
                      act, bool(key.param("se")), bool(key.param("idskip"))), shape
    if key.op == "Conv_1":
        return ConvBNAct(cin, key.output[2], 1, act="h_swish"), shape
    if key.op == "AvgPool2D":
        return GlobalPool(), shape
    if key.op == "Conv_2":
        return ConvBNAct(cin, key.output[2], 1, act="h_swish", bn=False), shape
    if key.op == "Logits":
        return Classifier(cin, key.output[0], pool=False), shape
    raise UserError(f"unknown block op {key.op!r} for the ofa space")


@register_space("ofa")
def _ofa_w12() -> OFASpace:
    return OFASpace(1.2)


@register_space("ofa-w1.0")
def _ofa_w10() -> OFASpace:
    return OFASpace(1.0)


# Small images (e.g. 8x8 digits upscaled): a quarter of the width, a stride-1 stem, searched
# resolutions 12..20. The number of classes follows the data (``variant(n_classes=...)``; 10 by default).
SMALL_RESOLUTIONS = tuple(range(8, 129, 4))


@register_space("ofa-small")
def _ofa_small() -> OFASpace:
    return OFASpace(0.25, n_classes=10, stem_stride=1, resolutions=SMALL_RESOLUTIONS,
                    search_resolutions=(12, 16, 20))
