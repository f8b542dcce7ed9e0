"""The weight-shared Once-for-All supernet of an ``ofa`` space: one set of weights, any subnet.

``set_active(arch)`` picks the subnet, ``forward`` runs it, ``extract(arch)`` returns it as the
plain ``OFAMobileNetV3`` that ``space.build(arch)`` makes, with the inherited weights.

Two regimes keep the hot path as cheap as the static network:
- eval mode: ``set_active`` derives every per-arch tensor once (slices, transformed kernels,
  BatchNorm folded into the convolutions) and ``forward`` only runs convolutions and
  activations on them (the static net's function, within float rounding).
  The cache is rebuilt by ``set_active``, ``eval()``, ``load_state_dict``, ``.to()``,
  ``sort_channels`` and ``load_subnet_bn_stats``; after changing weights or BatchNorm
  statistics in place by other means in eval mode, call ``refresh()``. Eval forwards do not
  propagate gradients into the shared weights.
- train mode: each forward takes views of the shared weights and runs the kernel
  transformation inside the autograd graph (a (mid, 25) x (25, 25) product at most twice per
  layer), so gradients and BatchNorm statistics land in the shared storage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import torch
from torch import nn

from ..base import Arch
from ..elastic import ElasticMBConv, FoldedMBConv
from ..errors import UserError
from ..layers import ConvBNAct, make_divisible
from .model import OFAMobileNetV3
from .layout import DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, N_STAGES, STAGE_ACTS, STAGE_SE, STAGE_STRIDES

if TYPE_CHECKING:  # the space hands itself in; this file needs its type only for annotations
    from .space import OFASpace

CHECKPOINT_FORMAT = "hwnas.ofa-supernet"
CHECKPOINT_VERSION = 1


def _mid(cin: int, expand: int) -> int:
    return make_divisible(round(cin * expand), 8)


class OFASupernet(nn.Module):
    """Once-for-All MobileNetV3 supernet: elastic kernel, width (expand ratio), depth, resolution."""

    def __init__(self, space: OFASpace, dropout: float = 0.1):
        super().__init__()
        self.space = space
        self.dropout_rate = dropout
        w = space.widths
        self.stem = ConvBNAct(3, w.stem, 3, space.stem_stride, act="h_swish")
        layers = [ElasticMBConv(w.stem, w.stem, (w.stem,), (3,), 1, "relu", False, True)]
        cin = w.stem
        for s in range(N_STAGES):
            cout = w.stages[s]
            for j in range(MAX_DEPTH):
                stride = STAGE_STRIDES[s] if j == 0 else 1
                layers.append(ElasticMBConv(cin, cout, [_mid(cin, e) for e in EXPANDS], KERNELS, stride,
                                            STAGE_ACTS[s], STAGE_SE[s], stride == 1 and cin == cout))
                cin = cout
        self.blocks = nn.ModuleList(layers)  # blocks[0] is the fixed first block; slot i is blocks[1 + i]
        self.final_expand = ConvBNAct(cin, w.final_expand, 1, act="h_swish")
        self.feature_mix = ConvBNAct(w.final_expand, w.feature_mix, 1, act="h_swish", bn=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(w.feature_mix, space.n_classes)
        self._arch: Arch | None = None
        self._active: list[tuple[ElasticMBConv, int, int]] = []
        self._frozen: list[tuple[ElasticMBConv, FoldedMBConv]] | None = None
        self.set_active(self.largest_arch(max(space.search_resolutions)))

    # ---- choosing a subnet ----------------------------------------------------------------
    @property
    def space_name(self) -> str:
        return self.space.name

    @property
    def active_arch(self) -> Arch:
        return self._arch

    @staticmethod
    def largest_arch(resolution: int = 224) -> Arch:
        n = N_STAGES * MAX_DEPTH
        return {"ks": [max(KERNELS)] * n, "e": [max(EXPANDS)] * n, "d": [max(DEPTHS)] * N_STAGES,
                "r": [resolution]}

    @staticmethod
    def smallest_arch(resolution: int = 128) -> Arch:
        n = N_STAGES * MAX_DEPTH
        return {"ks": [min(KERNELS)] * n, "e": [min(EXPANDS)] * n, "d": [min(DEPTHS)] * N_STAGES,
                "r": [resolution]}

    def _plan(self, arch: Arch) -> list[tuple[ElasticMBConv, int, int]]:
        """(layer, expanded width, kernel) of each layer the arch runs, in order."""
        first = self.blocks[0]
        plan = [(first, first.mids[0], first.kernels[0])]
        for s in range(N_STAGES):
            for j in range(arch["d"][s]):
                i = s * MAX_DEPTH + j
                layer = self.blocks[1 + i]
                plan.append((layer, _mid(layer.cin, arch["e"][i]), arch["ks"][i]))
        return plan

    def set_active(self, arch: Arch) -> "OFASupernet":
        """Make ``arch`` the subnet that ``forward`` runs; in eval mode derive its weights now."""
        arch = self.space.validate(arch)
        self._arch = arch
        self._active = self._plan(arch)
        self.refresh()
        return self

    def refresh(self) -> None:
        """Re-derive the eval-mode weights of the active subnet from the shared ones."""
        if self.training or not self._active:
            self._frozen = None
        else:
            self._frozen = [(layer, layer.frozen_tensors(mid, k)) for layer, mid, k in self._active]

    # ---- running it -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from_shared(self.shared_features(x))

    def shared_features(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and the fixed first block: the part every subnet runs with the same weights.

        Its output depends on the input alone (not on the active arch), so a caller measuring many
        subnets on the same images can compute it once and pass it to ``forward_from_shared``.
        """
        x = self.stem(x)
        first = self.blocks[0]
        if self._frozen is not None and not self.training:
            return first.run(x, self._frozen[0][1])
        return first.run(x, first.tensors(first.mids[0], first.kernels[0]))

    def forward_from_shared(self, x: torch.Tensor) -> torch.Tensor:
        """The active subnet from the output of ``shared_features`` to the logits."""
        if self._frozen is not None and not self.training:
            for layer, t in self._frozen[1:]:
                x = layer.run(x, t)
        else:
            for layer, mid, k in self._active[1:]:
                x = layer.run(x, layer.tensors(mid, k))
        x = self.final_expand(x)
        x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return self.classifier(self.dropout(torch.flatten(x, 1)))

    def train(self, mode: bool = True) -> "OFASupernet":
        super().train(mode)
        if hasattr(self, "_frozen"):
            self.refresh()
        return self

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        if hasattr(self, "_frozen"):
            self.refresh()  # cached tensors must follow the parameters to the new device / dtype
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.refresh()
        return result

    # ---- subnets as plain networks --------------------------------------------------------
    def subnet_state_dict(self, arch: Arch | None = None) -> dict[str, torch.Tensor]:
        """The state dict of ``space.build(arch)`` holding the supernet's weights for that subnet."""
        plan = self._active if arch is None else self._plan(self.space.validate(arch))
        own = self.state_dict()
        sd: dict[str, torch.Tensor] = {}
        for prefix in ("stem", "final_expand", "feature_mix", "classifier"):
            for key, t in own.items():
                if key.startswith(prefix + "."):
                    sd[key] = t.clone()
        with torch.no_grad():
            for bi, (layer, mid, k) in enumerate(plan):
                li = self._layer_index(layer)
                for key, t in layer.tensors(mid, k).state_items():
                    sd[f"blocks.{bi}.{key}"] = t.detach().clone()
                for key, t in own.items():
                    if key.startswith(f"blocks.{li}.") and key.endswith("num_batches_tracked"):
                        sd[f"blocks.{bi}." + key[len(f"blocks.{li}."):]] = t.clone()
        return sd

    def _layer_index(self, layer: ElasticMBConv) -> int:
        for i, m in enumerate(self.blocks):
            if m is layer:
                return i
        raise AssertionError("layer not in this supernet")

    def extract(self, arch: Arch | None = None) -> OFAMobileNetV3:
        """The subnet ``arch`` (default: the active one) as ``space.build(arch)``, weights inherited."""
        arch = self._arch if arch is None else arch
        net = self.space.build(arch, dropout=self.dropout_rate)
        net.load_state_dict(self.subnet_state_dict(arch))
        net.to(device=self.classifier.weight.device, dtype=self.classifier.weight.dtype)
        return net.train(self.training)

    @torch.no_grad()
    def load_subnet_bn_stats(self, arch: Arch, subnet: OFAMobileNetV3) -> None:
        """Copy a subnet's BatchNorm running statistics into the shared ones (first channels)."""
        plan = self._plan(self.space.validate(arch))
        src = subnet.state_dict()
        own = self.state_dict()
        for key, t in src.items():
            if not key.endswith(("running_mean", "running_var")):
                continue
            if key.startswith("blocks."):
                bi, rest = key[len("blocks."):].split(".", 1)
                key = f"blocks.{self._layer_index(plan[int(bi)][0])}.{rest}"
            own[key][:t.shape[0]].copy_(t)
        self.refresh()

    @torch.no_grad()
    def sort_channels(self, keep_expands: Iterable[int] = ()) -> None:
        """Re-order every elastic layer's expanded channels by importance (progressive shrinking).

        ``keep_expands``: expand ratios already trained; their channel prefixes keep their members.
        """
        keep = tuple(keep_expands)
        for layer in self.blocks[1:]:
            layer.sort_channels([_mid(layer.cin, e) for e in keep])
        self.refresh()

    # ---- checkpoints (the dict; file IO lives in nas.checkpoints) ------------------------
    def checkpoint(self) -> dict:
        """A ``torch.load(weights_only=True)``-safe dict: space name and version, config, weights."""
        return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "space": self.space_name, "space_version": self.space.version,
                "width_mult": float(self.space.width_mult), "dropout": float(self.dropout_rate),
                "space_params": self.space.space_params(),
                "active_arch": self._arch, "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, space: OFASpace, source: str = "checkpoint") -> "OFASupernet":
        """The supernet a ``checkpoint()`` dict holds; UserError when it is not one of ``space``."""
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{source} is not an hwnas supernet checkpoint")
        if ckpt.get("format_version") != CHECKPOINT_VERSION:
            raise UserError(f"{source} has supernet checkpoint format {ckpt.get('format_version')!r}; "
                            f"this hwnas reads {CHECKPOINT_VERSION}")
        if ckpt.get("space") != space.name:
            raise UserError(f"{source} holds a supernet of space {ckpt.get('space')!r}, not {space.name!r}")
        if ckpt.get("space_version") != space.version:
            raise UserError(f"{source} was saved with space {space.name!r} version {ckpt.get('space_version')!r}; "
                            f"this hwnas has version {space.version!r}")
        net = cls(space, dropout=float(ckpt.get("dropout", 0.1)))
        try:
            net.load_state_dict(ckpt["state_dict"])
        except (KeyError, RuntimeError, TypeError, AttributeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{source} has weights that do not fit space {space.name!r}: {first}") from None
        if ckpt.get("active_arch") is not None:
            net.set_active(ckpt["active_arch"])
        return net


def _bn_modules(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches: Iterable, arch: Arch | None = None,
                   max_batches: int | None = None) -> nn.Module:
    """Re-estimate BatchNorm running statistics of a subnet on a few batches (Once-for-All practice).

    ``net``: a plain network (e.g. an extracted subnet), re-calibrated in place and returned; or an
    ``OFASupernet`` with ``arch`` (default: its active arch): the subnet is extracted, calibrated,
    its statistics are written into the supernet's first channels, and the subnet is returned.
    Statistics are the average over the batches (BatchNorm with ``momentum=None``); only BatchNorm
    layers switch to train mode, so dropout stays off. ``batches`` yields tensors or (x, ...) tuples.
    """
    supernet = net if isinstance(net, OFASupernet) else None
    if supernet is not None:
        arch = supernet.active_arch if arch is None else arch
        net = supernet.extract(arch)
    was_training = net.training
    net.eval()
    bns = _bn_modules(net)
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    device = next(net.parameters()).device
    seen = 0
    try:
        for batch in batches:
            if max_batches is not None and seen >= max_batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            net(x.to(device))
            seen += 1
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        net.train(was_training)
    if seen == 0:
        raise UserError("BatchNorm re-calibration needs at least one batch")
    if supernet is not None:
        supernet.load_subnet_bn_stats(arch, net)
    return net
