"""Unit-scale activations before int8 quantization: BatchNorm statistics re-estimated on the inputs.

ONNX Runtime picks an int8 kernel by the quantization parameters, not only by the op: measured here
(ORT 1.32, 2-vCPU Xeon), a 7x7 depthwise conv of an ``ofa`` block ran as ``QLinearConv`` in 0.12 ms
when its activation ranges were small and as a float ``Conv`` between a dequantize and a quantize
in 2.3 ms when they were about 1, and the whole block 0.7 vs 2.1 ms. Ranges come from the
calibration inputs, and a network with random weights has none worth the name: PyTorch's default
conv initialisation shrinks the variance about threefold per layer, so twenty blocks in, a network's
activations were ~1e-8 (scales of 1.4e-8 at block 14) while the same block timed alone, fed unit
inputs, saw ranges of ~1. The block table then prices a different kernel than the network runs.

A trained network keeps its activations near unit scale (that is what its BatchNorm statistics
do). So before export, every BatchNorm's running statistics are re-estimated on random unit inputs
(cumulative average, a few forward passes in train mode), in blocks and whole networks alike: each
layer's output is then normalised as in a trained network, and a block sees inside a network the
ranges it sees alone. Weights are left as they are. Only int8 is affected: float kernels do not
depend on values.
"""

from __future__ import annotations

N_BATCHES = 2
BATCH = 4  # > 1: a BatchNorm over a 1x1 map needs more than one value per channel to train


def unit_activations(module, input_shape: tuple[int, ...], seed: int = 0):
    """A copy of ``module`` in eval mode with BatchNorm statistics of unit-scale random inputs.

    The caller's module is left as it is (its statistics may be trained ones); one without BatchNorm
    is returned itself, in eval mode.
    """
    import copy

    import torch
    from torch import nn

    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module.eval()
    module = copy.deepcopy(module)
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes, not an exponential one
    gen = torch.Generator().manual_seed(seed)
    module.train()
    with torch.no_grad():
        for _ in range(N_BATCHES):
            module(torch.randn(BATCH, *input_shape, generator=gen))
    return module.eval()
