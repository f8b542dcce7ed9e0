"""FBNet's DNAS (Wu et al., CVPR 2019): Gumbel-softmax over per-layer logits, loss CE * a * log(LAT)^b.

Every layer runs all its candidates; their outputs are summed with a Gumbel-softmax sample of the
layer's logits at temperature tau (annealed per epoch: ``tau = temperature * exp(-decay * epoch)``,
the paper's 5.0 and 0.045). Weight steps (on the training split) use a detached sample; arch
steps (on the validation split) minimise ``CE * alpha * log(LAT)^beta`` in the logits, LAT being
the latency of the sampled mixture from the target's table (``sum m * cost``, in microseconds so
that log(LAT) > 0 for tables in milliseconds). ``beta`` is the coefficient the runner adapts
toward the latency target; ``alpha`` only scales the arch gradient.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..strategies.base import Param
from ..strategies.registry import register_strategy
from .base import GradientStrategy
from .supernet import CandidateSupernet


class _DNASNet(torch.nn.Module):
    def __init__(self, net: CandidateSupernet, mask: torch.Tensor):
        super().__init__()
        self.net = net
        self.theta = torch.nn.Parameter(torch.zeros(mask.shape))
        self.register_buffer("mask", mask)

    def logits(self) -> torch.Tensor:
        return self.theta.masked_fill(~self.mask, float("-inf"))


def gumbel_softmax(logits: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(logits.shape, generator=gen).clamp_(1e-10, 1 - 1e-10)
    return F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)


@register_strategy("dnas")
class DNAS(GradientStrategy):
    coefficient_name = "beta"
    PARAMS = {
        "alpha": Param(float, 0.2, 0.0, 1e3, lo_open=True),
        "beta": Param(float, 0.6, 0.0, 1e3, lo_open=True),
        "temperature": Param(float, 5.0, 0.0, 1e3, lo_open=True),
        "temperature_decay": Param(float, 0.6, 0.0, 10.0),
        # a DNAS step runs every candidate, so 4 fine-tune epochs (not 6) keep the default run within
        # 5 minutes on 2 cores: 268 s measured with 4, 352 s with 6, on a loaded machine
        "finetune_epochs": Param(int, 4, 0, 10_000),
    }

    def initial_coefficient(self) -> float:
        return self.beta

    def tau(self, epoch: int) -> float:
        return self.temperature * math.exp(-self.temperature_decay * epoch)

    def supernet(self, job):
        net = CandidateSupernet(job.specs, job.n_classes, self.image_size, self.width, head=self.head)
        return _DNASNet(net, job.mask_tensor())

    def weight_parameters(self, model):
        return model.net.parameters()

    def arch_parameters(self, model):
        return [model.theta]

    def _mix(self, job, m: torch.Tensor):
        return [(range(len(s.positions)), m[i]) for i, s in enumerate(job.specs)]

    def weight_step(self, job, x, y, gen) -> float:
        model = job.model
        with torch.no_grad():
            m = gumbel_softmax(model.logits(), self.tau(job.epoch), gen)
        job.w_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model.net(x, self._mix(job, m)), y)
        loss.backward()
        job.w_opt.step()
        return float(loss.detach())

    def arch_step(self, job, x, y, gen) -> float:
        model = job.model
        m = gumbel_softmax(model.logits(), self.tau(job.epoch), gen)
        job.a_opt.zero_grad(set_to_none=True)
        ce = F.cross_entropy(model.net(x, self._mix(job, m)), y)
        lat_us = 1000.0 * (job.costs.base_ms + (m * job.cost_tensor()).sum())
        loss = ce * self.alpha * torch.log(lat_us.clamp_min(1.0 + 1e-6)) ** job.coefficient
        job.w_opt.zero_grad(set_to_none=True)  # the arch step moves the logits only
        loss.backward()
        job.a_opt.step()
        return float(loss.detach())

    def probabilities(self, job) -> np.ndarray:
        with torch.no_grad():
            return F.softmax(job.model.logits(), dim=-1).numpy().astype(np.float64)

    def path(self, job, choice):
        return [int(c) for c in choice]

    def forward(self, job, x, path):
        return job.model.net(x, path)

    def report(self, job) -> dict:
        return {"temperature_final": self.tau(min(job.epoch, self.epochs - 1))}  # the last search epoch's
