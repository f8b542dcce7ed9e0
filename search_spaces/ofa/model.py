"""The standalone MobileNetV3 network of a Once-for-All arch (what ``build`` and ``extract`` return)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ConvBNAct, MBConv


@dataclass(frozen=True)
class LayerSpec:
    """One inverted-residual layer: channels, expanded width, kernel, stride, activation, SE, skip."""

    cin: int
    cout: int
    mid: int
    kernel: int
    stride: int
    act: str
    se: bool
    residual: bool


@dataclass(frozen=True)
class NetSpec:
    """A whole network: stem width, its inverted-residual layers and the head widths."""

    stem: int
    layers: tuple[LayerSpec, ...]
    final_expand: int
    feature_mix: int
    n_classes: int = 1000
    dropout: float = 0.1


class OFAMobileNetV3(nn.Module):
    """MobileNetV3 as Once-for-All lays it out: stem, inverted residuals, expand, pool, mix, classifier."""

    def __init__(self, spec: NetSpec, stem_stride: int = 2):
        super().__init__()
        self.spec = spec
        self.stem = ConvBNAct(3, spec.stem, 3, stem_stride, act="h_swish")
        self.blocks = nn.Sequential(*[
            MBConv(s.cin, s.cout, s.mid, s.kernel, s.stride, s.act, s.se, s.residual)
            for s in spec.layers
        ])
        self.final_expand = ConvBNAct(spec.layers[-1].cout, spec.final_expand, 1, act="h_swish")
        self.feature_mix = ConvBNAct(spec.final_expand, spec.feature_mix, 1, act="h_swish", bn=False)
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = nn.Linear(spec.feature_mix, spec.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(self.blocks(self.stem(x)))
        x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return self.classifier(self.dropout(torch.flatten(x, 1)))

    def layer_table(self) -> list[dict]:
        """Each inverted-residual layer as read back from the modules' own weights."""
        rows = []
        for blk in self.blocks:
            dw = blk.depthwise.conv
            rows.append({
                "in_channels": blk.expand.conv.in_channels if blk.expand is not None else dw.in_channels,
                "out_channels": blk.project.conv.out_channels,
                "mid_channels": dw.out_channels,
                "kernel_size": dw.kernel_size[0],
                "stride": dw.stride[0],
                "act_func": "h_swish" if isinstance(blk.depthwise.act, nn.Hardswish) else "relu",
                "use_se": blk.se is not None,
                "residual": blk.residual,
            })
        return rows
