"""MACs and parameters counted on a built module (the check on every space's analytic costs)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def count_macs_params(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(MACs, params) of ``module`` on one input of ``input_shape`` (C, H, W).

    MACs are those of convolutions and linear layers (biases not counted), read off the output
    sizes of one forward pass; params are every trainable parameter.
    """
    total = [0]

    def conv_hook(m: nn.Conv2d, _inp, out):
        kh, kw = m.kernel_size
        total[0] += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp, out):
        total[0] += out[0].numel() * m.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = module.training
    try:
        module.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return int(total[0]), int(params)


def macs_params(space, X) -> tuple:
    """(MACs, params) arrays of the encoded archs ``X``: the space's block costs when it has them,
    else counted on built nets; NaN (unknown) when it can do neither, never a made-up 0."""
    import numpy as np

    try:
        return np.asarray(space.macs(X), np.float64), np.asarray(space.params(X), np.float64)
    except NotImplementedError:
        pass
    archs = space.decode(X)
    try:
        counted = np.array([count_macs_params(space.build(a), space.input_shape(a)) for a in archs], np.float64)
    except NotImplementedError:
        return np.full(len(archs), np.nan), np.full(len(archs), np.nan)
    return counted.reshape(len(archs), 2)[:, 0], counted.reshape(len(archs), 2)[:, 1]
