"""ProxylessNAS's MobileNetV2-backbone space (Cai, Zhu, Han, ICLR 2019), the one its mobile table prices.

    stem     3x3 conv, stride 2, 32 channels, ReLU6                    224 -> 112
    first    MBConv k3 e1, 32 -> 16 (fixed)                            112
    21 slots six stages of (4, 4, 4, 4, 4, 1) layers, widths (24, 40, 80, 96, 192, 320),
             first-layer strides (2, 2, 2, 1, 2, 1)                    -> 7
    head     1x1 conv to 1280, ReLU6, global pool, classifier (1000)

Every slot picks an MBConv ``k{3,5,7}e{3,6}`` (kernel, expand ratio on the layer's input width);
the 15 slots after a stage's first layer may also be ``skip`` (ProxylessNAS's zero layer: only the
identity shortcut remains). The arch is ``{"ops": [21 names]}``. Block keys are ProxylessNAS's own
(``expand`` is the ratio), so ``mobile_trim.yaml`` imported with ``nas import-table`` prices them;
the stem and head keys state ``hs:0`` (the importer adds it to mobile_trim's ReLU6 convs).

The released nets (``proxyless_{mobile,mobile_14,gpu,cpu}.config``) were widened after the
search: ``from_net_config`` reads a net's layer choices as an arch of this space, and
``config_widths`` its own channel counts; ``ProxylessSpace(widths)`` is the same space at those
widths, whose ``build`` and ``macs`` give the released network itself (``build_net_config``).
The widths are the space's parameters (``space_params()``): ``nas convert`` records them in the
arch file, and ``predict``/``export``/``convert`` rebuild that space from them.
"""

from __future__ import annotations

from ..base import Arch
from ..blocks import BlockKey
from ..chain import ChainSpace, Slot
from ..mobile_blocks import MobileBlocksMixin, down, mbconv_key
from ..registry import register_space
from .layout import (ACT, EXPANDS, IMAGE_SIZE, KERNELS, N_CLASSES, N_SLOTS, OPTIONS, RELU6,  # noqa: F401
                     SEARCHED, SKIP, STAGE_CELLS, STAGE_STRIDES, ProxylessWidths, slot_layout)


class ProxylessSpace(MobileBlocksMixin, ChainSpace):
    """ProxylessNAS: MobileNetV2 backbone, MBConv k{3,5,7} x e{3,6} or skip per layer (Cai et al., ICLR 2019)."""

    version = "1"
    act = ACT
    image_size = IMAGE_SIZE

    def __init__(self, widths: ProxylessWidths = SEARCHED, dropout: float = 0.0):
        if len(widths.stages) != len(STAGE_CELLS):
            raise ValueError(f"ProxylessNAS has {len(STAGE_CELLS)} stages, got {len(widths.stages)} widths")
        self.widths = widths
        self.dropout = dropout

    def slots(self) -> list[Slot]:
        w = self.widths
        size, cin = down(self.image_size, 2), w.first
        slots = []
        for j, (s, first) in enumerate(slot_layout()):
            cout, stride = w.stages[s], STAGE_STRIDES[s] if first else 1
            residual = stride == 1 and cin == cout
            names = list(OPTIONS)
            keys: list[BlockKey | None] = [mbconv_key(size, cin, cout, cin * e, k, stride, residual, ratio=e)
                                           for k, e in OPTIONS.values()]
            if not first and residual:
                names.append(SKIP)
                keys.append(None)
            slots.append(Slot(f"ops[{j}]", tuple(names), tuple(keys)))
            size, cin = down(size, stride), cout
        return slots

    def fixed_blocks(self):
        w, r = self.widths, self.image_size
        f, last = down(r, 2), down(r, 32)
        # hs:0: the stem and head are ReLU6. A Conv key without ``hs`` means Once-for-All's h-swish
        # (the key grammar's default), which priced them +0.7 ms a net on the pixel1 cost model.
        return ([BlockKey("Conv", (r, r, 3), (f, f, w.stem), RELU6),
                 mbconv_key(f, w.stem, w.first, w.stem, 3, 1, False, ratio=1)],
                [BlockKey("Conv_1", (last, last, w.stages[-1]), (last, last, w.head), RELU6),
                 BlockKey("Logits", (last, last, w.head), (N_CLASSES,))])

    # ---- space parameters: the channel counts -------------------------------------------
    def space_params(self) -> dict:
        """``{"widths": {stem, first, stages, head}}`` when not the searched widths, else ``{}``."""
        if self.widths == SEARCHED:
            return {}
        w = self.widths
        return {"widths": {"stem": w.stem, "first": w.first, "stages": list(w.stages), "head": w.head}}

    def with_params(self, params: dict) -> "ProxylessSpace":
        """This space at other channel counts: ``{"widths": {"stem", "first", "stages": [6], "head"}}``."""
        from ..errors import UserError

        unknown = set(params) - {"widths"}
        if unknown:
            raise UserError(f"space {self.name!r}: unknown space_params {', '.join(sorted(map(str, unknown)))}; "
                            f"accepted: widths")
        w = params.get("widths", {})
        fields = {"stem", "first", "stages", "head"}
        if not isinstance(w, dict) or set(w) != fields:
            raise UserError(f"space {self.name!r}: space_params.widths must be an object with exactly "
                            f"stem, first, stages ({len(STAGE_CELLS)} ints) and head")
        stages = w["stages"]
        ints = [w["stem"], w["first"], w["head"], *(stages if isinstance(stages, list) else [None])]
        if not isinstance(stages, list) or len(stages) != len(STAGE_CELLS) or \
                not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 8192 for c in ints):
            raise UserError(f"space {self.name!r}: space_params.widths: channel counts must be ints in 1..8192, "
                            f"stages a list of {len(STAGE_CELLS)}")
        return self.at_widths(ProxylessWidths(w["stem"], w["first"], tuple(stages), w["head"]))

    # ---- the released nets (ProxylessNAS .config layer lists) -----------------------------
    def from_net_config(self, net_config: dict, image_size: int | None = None) -> Arch:
        """The arch of a ProxylessNAS net config (its layer choices; widths are ``config_widths``)."""
        from .netconfig import net_config_to_arch

        return net_config_to_arch(self, net_config, image_size)

    def net_config_space(self, net_config: dict) -> "ProxylessSpace":
        """The space at the net config's own channel counts (what its arch must be priced and built with)."""
        return self.at_widths(self.config_widths(net_config))

    @staticmethod
    def config_widths(net_config: dict) -> ProxylessWidths:
        """The channel counts a ProxylessNAS net config was released with."""
        from .netconfig import net_config_widths

        return net_config_widths(net_config)

    def at_widths(self, widths: ProxylessWidths) -> "ProxylessSpace":
        """This space with other channel counts (same slots and options, same name; see ``space_params``)."""
        if widths == self.widths:
            return self
        sp = ProxylessSpace(widths, self.dropout)
        sp.name = self.name
        return sp

    def build_net_config(self, net_config: dict):
        """The released network of a ProxylessNAS net config, at its own widths (fresh weights)."""
        return self.net_config_space(net_config).build(self.from_net_config(net_config))


@register_space("proxyless")
def _proxyless() -> ProxylessSpace:
    return ProxylessSpace()
