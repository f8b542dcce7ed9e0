"""Elastic inverted-residual layer for weight-shared supernets: one set of weights, any width and kernel.

The layer stores the largest layer's weights in the same sub-module layout as ``layers.MBConv``
(``expand``, ``depthwise``, ``se``, ``project``), so a subnet's state dict is the supernet's with
leading slices taken, except the depthwise kernel. It never calls those sub-modules: ``run``
applies the active tensors functionally, with exactly the ops the static ``MBConv`` runs.

Elastic kernel (Once-for-All): a smaller kernel is the centre of the next larger one, passed
through a learned (k*k x k*k) matrix shared by every channel of the layer (7 -> 5 -> 3).
Elastic width: the first ``mid`` channels of the expanded representation are the active ones;
``sort_channels`` re-orders them by importance so the most important ones come first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNAct, SqueezeExcite, se_channels

_ACT_FNS = {"relu": F.relu, "h_swish": F.hardswish}


def centre_crop(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size x size`` window of a (..., K, K) kernel."""
    off = (kernel.shape[-1] - size) // 2
    return kernel[..., off:off + size, off:off + size]


def shrink_kernel(kernel: torch.Tensor, size: int, matrices: Sequence[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """The ``size`` kernel derived from a larger one: centre crop, then the crop times its matrix.

    ``matrices`` lists (k, M) from the largest smaller kernel down: each step crops the current
    kernel to k x k and multiplies the flattened window by M (k*k x k*k), in the autograd graph.
    """
    w = kernel
    for k, m in matrices:
        if w.shape[-1] == size:
            break
        crop = centre_crop(w, k)
        w = (crop.reshape(-1, k * k) @ m).reshape(crop.shape)
    if w.shape[-1] != size:
        raise ValueError(f"kernel {size} is not reachable from {kernel.shape[-1]}")
    return w


@dataclass(slots=True)
class BNTensors:
    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor


@dataclass(slots=True)
class MBConvTensors:
    """The tensors one active inverted-residual layer runs with (slices or derived kernels)."""

    expand: torch.Tensor | None
    expand_bn: BNTensors | None
    depthwise: torch.Tensor
    depthwise_bn: BNTensors
    se: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None  # reduce w, b; expand w, b
    project: torch.Tensor
    project_bn: BNTensors

    def state_items(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(key, tensor) in the state-dict naming of ``layers.MBConv`` (no BN counters)."""
        if self.expand is not None:
            yield "expand.conv.weight", self.expand
            yield from _bn_items("expand.bn", self.expand_bn)
        yield "depthwise.conv.weight", self.depthwise
        yield from _bn_items("depthwise.bn", self.depthwise_bn)
        if self.se is not None:
            for name, t in zip(("reduce.weight", "reduce.bias", "expand.weight", "expand.bias"), self.se):
                yield f"se.{name}", t
        yield "project.conv.weight", self.project
        yield from _bn_items("project.bn", self.project_bn)


@dataclass(slots=True)
class FoldedMBConv:
    """One active inverted-residual layer for inference: (weight, bias) of each convolution with
    its BatchNorm folded in (w * g / sqrt(var + eps), b - mean * g / sqrt(var + eps))."""

    expand: tuple[torch.Tensor, torch.Tensor] | None
    depthwise: tuple[torch.Tensor, torch.Tensor]
    se: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None
    project: tuple[torch.Tensor, torch.Tensor]
    cropped: dict[int, torch.Tensor] = field(default_factory=dict)  # depthwise kernel by reach


def _memory_format(w: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if w.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _fold(w: torch.Tensor, bn: BNTensors, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + eps)
    w = (w * scale.reshape(-1, 1, 1, 1)).contiguous(memory_format=_memory_format(w))
    return w.detach(), (bn.bias - bn.running_mean * scale).detach().contiguous()


def _bn_items(prefix: str, bn: BNTensors):
    for name in ("weight", "bias", "running_mean", "running_var"):
        yield f"{prefix}.{name}", getattr(bn, name)


def _lead(t: torch.Tensor, n: int) -> torch.Tensor:
    return t if t.shape[0] == n else t[:n]


def _lead2(t: torch.Tensor, n0: int, n1: int) -> torch.Tensor:
    """The leading (n0, n1) block of a 1x1 conv weight; a view when no slicing is needed."""
    if t.shape[1] != n1:
        t = t[:, :n1]
    return t if t.shape[0] == n0 else t[:n0]


def _bn_slice(bn: nn.BatchNorm2d, n: int) -> BNTensors:
    return BNTensors(_lead(bn.weight, n), _lead(bn.bias, n), _lead(bn.running_mean, n), _lead(bn.running_var, n))


class ElasticMBConv(nn.Module):
    """An inverted residual whose expanded width and depthwise kernel are chosen per call.

    ``mids`` are the allowed expanded widths, ``kernels`` the allowed depthwise kernels; the
    stored weights are those of the largest (max width, max kernel) layer.
    """

    def __init__(self, cin: int, cout: int, mids: Sequence[int], kernels: Sequence[int], stride: int,
                 act: str, se: bool, residual: bool):
        super().__init__()
        self.cin, self.cout, self.stride, self.act, self.residual = cin, cout, stride, act, residual
        self.mids = tuple(sorted(set(mids)))
        self.kernels = tuple(sorted(set(kernels)))
        mid, k = self.mids[-1], self.kernels[-1]
        # The fixed first block (mid == cin, one width) has no 1x1 expansion, as in MBConv.
        self.expand = None if self.mids == (cin,) else ConvBNAct(cin, mid, 1, act=act)
        self.depthwise = ConvBNAct(mid, mid, k, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, se_channels(mid)) if se else None
        self.project = ConvBNAct(mid, cout, 1, act="none")
        # One matrix per smaller kernel, initialised to identity (the plain centre crop).
        self.kernel_transform = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernels[::-1], self.kernels[-2::-1])})
        self._act_fn = _ACT_FNS[act]

    def _matrices(self) -> list[tuple[int, torch.Tensor]]:
        return sorted(((int(key.split("to")[1]), m) for key, m in self.kernel_transform.items()),
                      key=lambda km: -km[0])

    def active_kernel(self, kernel: int) -> torch.Tensor:
        """The full-width depthwise kernel of size ``kernel`` (derived, in the autograd graph)."""
        return shrink_kernel(self.depthwise.conv.weight, kernel, self._matrices())

    def tensors(self, mid: int, kernel: int) -> MBConvTensors:
        """The weights of the subnet layer with expanded width ``mid`` and depthwise ``kernel``.

        Slices are views of the stored parameters and buffers, so in training the gradients and
        BatchNorm running statistics land in the shared storage.
        """
        if mid not in self.mids or kernel not in self.kernels:
            raise ValueError(f"width {mid} / kernel {kernel} not in {self.mids} / {self.kernels}")
        dw = self.depthwise.conv.weight
        if kernel != dw.shape[-1]:
            dw = shrink_kernel(_lead(dw, mid), kernel, self._matrices())
        else:
            dw = _lead(dw, mid)
        se = None
        if self.se is not None:
            sq = se_channels(mid)
            r, e = self.se.reduce, self.se.expand
            se = (_lead2(r.weight, sq, mid), _lead(r.bias, sq), _lead2(e.weight, mid, sq), _lead(e.bias, mid))
        return MBConvTensors(
            expand=None if self.expand is None else _lead(self.expand.conv.weight, mid),
            expand_bn=None if self.expand is None else _bn_slice(self.expand.bn, mid),
            depthwise=dw, depthwise_bn=_bn_slice(self.depthwise.bn, mid), se=se,
            project=_lead2(self.project.conv.weight, self.cout, mid),
            project_bn=_bn_slice(self.project.bn, self.cout))

    def frozen_tensors(self, mid: int, kernel: int) -> "FoldedMBConv":
        """The active layer for inference, BatchNorm folded into the convolutions: computed once.

        Folding uses the running statistics as they are now, so after changing them the caller
        derives the tensors again (``OFASupernet.refresh`` does, and its ``eval()`` calls that).
        """
        with torch.no_grad():
            t = self.tensors(mid, kernel)
            expand = None if t.expand is None else _fold(t.expand, t.expand_bn, self.expand.bn.eps)
            se = None if t.se is None else tuple(x.detach().contiguous() for x in t.se)
            return FoldedMBConv(expand, _fold(t.depthwise, t.depthwise_bn, self.depthwise.bn.eps), se,
                                _fold(t.project, t.project_bn, self.project.bn.eps))

    def _bn(self, x: torch.Tensor, t: BNTensors, bn: nn.BatchNorm2d) -> torch.Tensor:
        if self.training:
            bn.num_batches_tracked.add_(1)
        return F.batch_norm(x, t.running_mean, t.running_var, t.weight, t.bias, self.training, bn.momentum, bn.eps)

    def _depthwise(self, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                   cropped: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        reach = 2 * max(y.shape[-2:]) - 1
        if w.shape[-1] > reach:
            # Taps farther from the centre than the map is wide only ever meet zero padding: the
            # centre crop gives the same output, and CPU depthwise kernels are slow on such maps
            # (a 5x5 kernel on a 1x1 map is a per-channel scale). ``cropped`` keeps the crops.
            if cropped is None:
                w = centre_crop(w, reach)
            elif reach in cropped:
                w = cropped[reach]
            else:
                w = cropped[reach] = centre_crop(w, reach).contiguous(memory_format=_memory_format(w))
        k = w.shape[-1]
        return F.conv2d(y, w, b, self.stride, k // 2, 1, w.shape[0])

    def run(self, x: torch.Tensor, t: "MBConvTensors | FoldedMBConv") -> torch.Tensor:
        """The layer's output with the given active tensors (the ops of ``MBConv.forward``)."""
        if isinstance(t, FoldedMBConv):
            return self._run_folded(x, t)
        inplace = not torch.is_grad_enabled()  # e.g. BatchNorm re-calibration: no graph to keep
        act = self._act_fn
        y = x
        if t.expand is not None:
            y = act(self._bn(F.conv2d(y, t.expand), t.expand_bn, self.expand.bn), inplace=inplace)
        y = act(self._bn(self._depthwise(y, t.depthwise, None), t.depthwise_bn, self.depthwise.bn), inplace=inplace)
        if t.se is not None:
            rw, rb, ew, eb = t.se
            s = F.relu(F.conv2d(y.mean((2, 3), keepdim=True), rw, rb), inplace=inplace)
            y = y * F.hardsigmoid(F.conv2d(s, ew, eb), inplace=inplace)
        y = self._bn(F.conv2d(y, t.project), t.project_bn, self.project.bn)
        if not self.residual:
            return y
        return y.add_(x) if inplace else x + y

    def _run_folded(self, x: torch.Tensor, t: "FoldedMBConv") -> torch.Tensor:
        # Activations in place where no autograd graph needs their inputs (the usual inference).
        inplace = not (torch.is_grad_enabled() and x.requires_grad)
        act = self._act_fn
        y = x
        if t.expand is not None:
            y = act(F.conv2d(y, *t.expand), inplace=inplace)
        y = act(self._depthwise(y, *t.depthwise, t.cropped), inplace=inplace)
        if t.se is not None:
            rw, rb, ew, eb = t.se
            s = F.relu(F.conv2d(y.mean((2, 3), keepdim=True), rw, rb), inplace=inplace)
            y = y * F.hardsigmoid(F.conv2d(s, ew, eb), inplace=inplace)
        y = F.conv2d(y, *t.project)
        if not self.residual:
            return y
        return y.add_(x) if inplace else x + y

    def forward(self, x: torch.Tensor, mid: int | None = None, kernel: int | None = None) -> torch.Tensor:
        return self.run(x, self.tensors(mid or self.mids[-1], kernel or self.kernels[-1]))

    @torch.no_grad()
    def sort_channels(self, keep_bands: Sequence[int] = ()) -> torch.Tensor:
        """Re-order the expanded channels by importance (L1 norm of the projection's input weights).

        Every tensor indexed by those channels is permuted the same way, so every subnet's
        function is unchanged up to which channels it keeps: the most important come first.
        ``keep_bands``: widths already trained as subnets (progressive shrinking); channels are
        then only sorted within the bands those widths cut, so trained prefixes keep their
        channels. The SE's squeeze channels are sorted by their own importance too.
        Returns the permutation applied. Optimiser state for these weights is not permuted.
        """
        if self.expand is None:
            return torch.arange(self.mids[-1])
        order = _banded_order(self.project.conv.weight.abs().sum(dim=(0, 2, 3)), keep_bands)
        _permute(self.expand.conv.weight, order, 0)
        _permute_bn(self.expand.bn, order)
        _permute(self.depthwise.conv.weight, order, 0)
        _permute_bn(self.depthwise.bn, order)
        _permute(self.project.conv.weight, order, 1)
        if self.se is not None:
            _permute(self.se.reduce.weight, order, 1)
            _permute(self.se.expand.weight, order, 0)
            _permute(self.se.expand.bias, order, 0)
            sq_order = _banded_order(self.se.expand.weight.abs().sum(dim=(0, 2, 3)),
                                     [se_channels(b) for b in keep_bands])
            _permute(self.se.reduce.weight, sq_order, 0)
            _permute(self.se.reduce.bias, sq_order, 0)
            _permute(self.se.expand.weight, sq_order, 1)
        return order


def _banded_order(importance: torch.Tensor, bands: Sequence[int]) -> torch.Tensor:
    """Indices sorting ``importance`` descending within the bands that the widths ``bands`` cut."""
    n = len(importance)
    cuts = sorted({0, n, *[b for b in bands if 0 < b < n]})
    return torch.cat([lo + torch.argsort(importance[lo:hi], descending=True, stable=True)
                      for lo, hi in zip(cuts, cuts[1:])])


def _permute(t: torch.Tensor, order: torch.Tensor, dim: int) -> None:
    t.copy_(t.index_select(dim, order.to(t.device)))


def _permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        _permute(t, order, 0)
