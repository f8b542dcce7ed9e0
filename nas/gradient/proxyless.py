"""ProxylessNAS (Cai, Zhu, Han, ICLR 2019): binarised paths, BinaryConnect-style arch gradient.

Per layer, architecture logits alpha give path probabilities p = softmax(alpha). A weight step
samples one path per layer from p and trains only it (memory of one path). An arch step samples
two distinct paths per layer, renormalises their probabilities, activates one of them through a
binary gate g, and back-propagates to the gates: ``dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)``
over the two (the paper's two-path approximation; only those two paths are computed). The
expected latency ``E[LAT] = sum p * cost`` from the target's table is added as
``lambda * E[LAT] / T``, differentiable in alpha; lambda is the coefficient the runner adapts.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..strategies.base import Param
from ..strategies.registry import register_strategy
from .base import GradientStrategy
from .supernet import CandidateSupernet


class _ProxylessNet(torch.nn.Module):
    def __init__(self, net: CandidateSupernet, mask: torch.Tensor):
        super().__init__()
        self.net = net
        self.alpha = torch.nn.Parameter(torch.zeros(mask.shape))
        self.register_buffer("mask", mask)

    def probs(self) -> torch.Tensor:
        return F.softmax(self.alpha.masked_fill(~self.mask, float("-inf")), dim=-1)


@register_strategy("proxyless")
class ProxylessNAS(GradientStrategy):
    coefficient_name = "lambda"
    PARAMS = {"lambda_latency": Param(float, 0.1, 0.0, 1e3, lo_open=True)}

    def initial_coefficient(self) -> float:
        return self.lambda_latency

    def supernet(self, job):
        net = CandidateSupernet(job.specs, job.n_classes, self.image_size, self.width, head=self.head)
        return _ProxylessNet(net, job.mask_tensor())

    def weight_parameters(self, model):
        return model.net.parameters()

    def arch_parameters(self, model):
        return [model.alpha]

    def weight_step(self, job, x, y, gen) -> float:
        model = job.model
        with torch.no_grad():
            one = torch.multinomial(model.probs(), 1, generator=gen)[:, 0]
        job.w_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model.net(x, [int(c) for c in one]), y)
        loss.backward()
        job.w_opt.step()
        return float(loss.detach())

    def arch_step(self, job, x, y, gen) -> float:
        model = job.model
        with torch.no_grad():
            p = model.probs()
            two = torch.multinomial(p + 1e-12 * job.mask_tensor(), 2, replacement=False, generator=gen)
            n_valid = job.mask_tensor().sum(dim=1)
            pair_p = torch.gather(p, 1, two)
            pair_p = pair_p / pair_p.sum(dim=1, keepdim=True).clamp_min(1e-12)
            active = torch.multinomial(pair_p + 1e-12, 1, generator=gen)[:, 0]
        gates, mix = [], []
        for i in range(len(job.specs)):
            if int(n_valid[i]) < 2:
                mix.append(0)
                gates.append(None)
                continue
            g = F.one_hot(active[i], 2).float().requires_grad_(True)
            gates.append(g)
            mix.append(([int(two[i, 0]), int(two[i, 1])], g))
        job.a_opt.zero_grad(set_to_none=True)
        ce = F.cross_entropy(model.net(x, mix), y)
        live = [g for g in gates if g is not None]
        dg = torch.autograd.grad(ce, live) if live else []
        grad = torch.zeros_like(model.alpha)
        k = 0
        for i, g in enumerate(gates):
            if g is None:
                continue
            pp, d = pair_p[i], dg[k]
            k += 1
            # BinaryConnect through the softmax of the two sampled paths
            gi = torch.stack([sum(d[j] * pp[j] * ((1.0 if a == j else 0.0) - pp[a]) for j in range(2))
                              for a in range(2)])
            grad[i, two[i]] += gi
        lat_ms = job.costs.base_ms + (model.probs() * job.cost_tensor()).sum()
        reg = job.coefficient * lat_ms / job.limit_ms
        reg.backward()
        model.alpha.grad = model.alpha.grad + grad
        job.a_opt.step()
        job.w_opt.zero_grad(set_to_none=True)
        return float(ce.detach()) + float(reg.detach())

    def probabilities(self, job) -> np.ndarray:
        with torch.no_grad():
            return job.model.probs().numpy().astype(np.float64)

    def path(self, job, choice):
        return [int(c) for c in choice]

    def forward(self, job, x, path):
        return job.model.net(x, path)

    def report(self, job) -> dict:
        return {}
