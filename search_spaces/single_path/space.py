"""Single-Path NAS's space (Stamoulis et al., ECML-PKDD 2019): 22 MBConv layers on MobileNetV2's skeleton.

Layout (the search code's supernet block strings ``r1_k3_s11_e1_i32_o16_noskip``,
``r4_k5_s22_e6_i16_o24``, ``r4_k5_s22_e6_i24_o40``, ``r4_k5_s22_e6_i40_o80``,
``r4_k5_s11_e6_i80_o96``, ``r4_k5_s22_e6_i96_o192``, ``r1_k3_s11_e6_i192_o320_noskip``), at 224x224:

    stem     3x3 conv, stride 2, 32 channels, ReLU                        224 -> 112
    layer 0  MBConv k3 e1, 32 -> 16 (fixed; no shortcut)                  112
    1-4      24 channels, first stride 2                                  56
    5-8      40 channels, first stride 2                                  28
    9-12     80 channels, first stride 2                                  14
    13-16    96 channels, stride 1                                        14
    17-20    192 channels, first stride 2                                 7
    21       192 -> 320, stride 1 (no shortcut)                           7
    head     1x1 conv to 1280, ReLU, global pool, classifier (1000)

Layers 1-21 pick ``k3e3``, ``k3e6``, ``k5e3``, ``k5e6`` (kernel, expand ratio on the layer's input
width); the 15 layers whose input and output shapes match (every stage's layers after its first)
may also be ``skip``. Layer 0 is fixed (its entry in the Pixel 1 runtime model is the same block
for all four options). The arch is ``{"ops": [22 names]}``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..blocks import BlockKey
from ..chain import ChainSpace, Slot
from ..mobile_blocks import MobileBlocksMixin, down, mbconv_key
from ..registry import register_space
from .layout import (ACT, FIRST, FIRST_WIDTH, HEAD, IMAGE_SIZE, LAYER_OPTIONS, N_CLASSES, N_LAYERS,  # noqa: F401
                     OPTIONS, SKIP, STAGES, STEM, layer_plan)


class SinglePathSpace(MobileBlocksMixin, ChainSpace):
    """Single-Path NAS: 22 MBConv layers, each k3e3 / k3e6 / k5e3 / k5e6 / skip (Stamoulis et al., 2019)."""

    version = "1"
    act = ACT
    image_size = IMAGE_SIZE
    layer_options = LAYER_OPTIONS

    def __init__(self, dropout: float = 0.2):
        self.dropout = dropout

    def slots(self) -> list[Slot]:
        slots = []
        for i, (size, cin, cout, stride, shortcut) in enumerate(layer_plan(self.image_size)):
            if i == 0:
                slots.append(Slot(f"ops[{i}]", (FIRST,), (mbconv_key(size, cin, cout, cin, 3, stride, False),)))
                continue
            names = list(OPTIONS)
            keys: list[BlockKey | None] = [mbconv_key(size, cin, cout, cin * e, k, stride, shortcut)
                                           for k, e in OPTIONS.values()]
            if shortcut:
                names.append(SKIP)
                keys.append(None)
            slots.append(Slot(f"ops[{i}]", tuple(names), tuple(keys)))
        return slots

    def fixed_blocks(self):
        r = self.image_size
        f = down(r, 2)
        last = down(r, 32)
        return ([BlockKey("Conv", (r, r, 3), (f, f, STEM), (("hs", 0),))],
                [BlockKey("Conv_1", (last, last, 320), (last, last, HEAD), (("hs", 0),)),
                 BlockKey("Logits", (last, last, HEAD), (N_CLASSES,))])

    # ---- per-layer pricing (Single-Path NAS's runtime model) ------------------------------
    @cached_property
    def _layer_columns(self) -> np.ndarray:
        """(22, n_choices): each choice's column in ``layer_options`` order, ``len`` for skip."""
        table = np.zeros((N_LAYERS, max(len(d.choices) for d in self.dims)), dtype=np.int64)
        for j, d in enumerate(self.dims):
            for c, name in enumerate(d.choices):
                # The fixed first layer is priced by its row's first column (all four are that block).
                table[j, c] = len(LAYER_OPTIONS) if name == SKIP else (
                    0 if name == FIRST else LAYER_OPTIONS.index(name))
        return table

    def layer_choices(self, X: np.ndarray) -> np.ndarray:
        """(n, 22) option indices into ``layer_options`` (``len(layer_options)`` = skip), vectorised."""
        X = np.asarray(X)
        return self._layer_columns[np.arange(N_LAYERS)[None, :], X]

    def supernet(self, **kw):
        """The superkernel supernet (``SinglePathSupernet``): ``set_active``, ``forward``, ``extract``."""
        from .supernet import SinglePathSupernet

        return SinglePathSupernet(self, **kw)


@register_space("single_path")
def _single_path() -> SinglePathSpace:
    return SinglePathSpace()
