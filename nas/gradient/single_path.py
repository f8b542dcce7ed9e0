"""Single-Path NAS (Stamoulis et al., ECML-PKDD 2019): thresholds on superkernel weight norms.

Each layer is one k5/e6 superkernel (``SuperkernelSupernet``). Three trainable thresholds per
layer decide, from the mean squared weights of the depthwise kernel's parts, whether the 5x5
ring is used (kernel 5 vs 3), whether the second half of the channels is used (expansion 6 vs 3)
and whether the first half is (else skip, where the layer has an identity shortcut). The
indicators are hard in the forward pass and relaxed to a sigmoid of ``(norm - t) / sharpness``
for the gradient (straight-through). The runtime ``R`` is the table's per-layer latency under the
relaxed decisions, and the loss is ``CE + lambda * log(R)``; lambda is adapted toward the target.
Weights and thresholds are trained together, one step per training batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces.errors import UserError

from ..strategies.base import Param
from ..strategies.registry import register_strategy
from .base import GradientStrategy
from .found import FoundLayer, FoundNet, assemble
from .supernet import Candidate, SuperkernelSupernet

ALLOWED = {Candidate(3, 3), Candidate(3, 6), Candidate(5, 3), Candidate(5, 6), None}


class _SinglePathNet(torch.nn.Module):
    def __init__(self, net: SuperkernelSupernet, learn: torch.Tensor, fixed: torch.Tensor):
        super().__init__()
        self.net = net
        n = len(net.layers)
        # norms are divided by their initial value, so one threshold scale fits every layer
        with torch.no_grad():
            ref = torch.stack([torch.stack(net.ring_and_halves(i)) for i in range(n)])
        self.register_buffer("ref", ref.clamp_min(1e-12))
        self.thresholds = torch.nn.Parameter(torch.full((n, 3), 0.5))
        self.register_buffer("learn", learn)   # (n, 3) bool: decision (k5, e6, e3) is searched here
        self.register_buffer("fixed", fixed)   # (n, 3) value of a decision that is not searched

    def norms(self) -> torch.Tensor:
        return torch.stack([torch.stack(self.net.ring_and_halves(i)) for i in range(len(self.net.layers))]) / self.ref

    def gates(self, sharpness: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(hard gates with straight-through sigmoid gradients, the relaxed sigmoid values), (n, 3) each."""
        z = (self.norms() - self.thresholds) / sharpness
        soft = torch.sigmoid(z)
        hard = (z > 0).float()
        ste = hard + soft - soft.detach()
        return (torch.where(self.learn, ste, self.fixed), torch.where(self.learn, soft, self.fixed))


def _fixed_decisions(specs) -> tuple[torch.Tensor, torch.Tensor]:
    learn = torch.zeros(len(specs), 3, dtype=torch.bool)
    fixed = torch.zeros(len(specs), 3)
    for i, s in enumerate(specs):
        c = [x for x in s.candidates if x is not None]
        k, e = {x.kernel for x in c}, {x.expand for x in c}
        learn[i, 0], fixed[i, 0] = len(k) > 1, float(k == {5})
        learn[i, 1], fixed[i, 1] = len(e) > 1, float(e == {6})
        learn[i, 2], fixed[i, 2] = None in s.candidates and bool(c), 1.0 if c else 0.0
    return learn, fixed


@register_strategy("single-path")
class SinglePathNAS(GradientStrategy):
    coefficient_name = "lambda"
    PARAMS = {"lambda_runtime": Param(float, 0.5, 0.0, 1e3, lo_open=True),
              "sharpness": Param(float, 0.1, 0.0, 10.0, lo_open=True)}

    def initial_coefficient(self) -> float:
        return self.lambda_runtime

    def check(self, space, specs) -> None:
        for s in specs:
            if len(s.candidates) > 1 and not set(s.candidates) <= ALLOWED:
                raise UserError(f"strategy 'single-path' needs a superkernel space (every layer choosing among "
                                f"k3e3, k3e6, k5e3, k5e6 and skip, like single_path); {space.name!r} has layer "
                                f"{space.dims[s.dim].name} with other choices")

    def supernet(self, job):
        net = SuperkernelSupernet(job.specs, job.n_classes, self.image_size, self.width, head=self.head)
        return _SinglePathNet(net, *_fixed_decisions(job.specs))

    def found_net(self, job, choice) -> FoundNet:
        """Each layer's static block cut out of its superkernel (centre kernel, leading channels)."""
        layers, states = [], []
        for layer, (g5, g6, g3) in zip(job.model.net.layers, self.path(job, choice).tolist()):
            if g3 == 0:
                layers.append(None)
                states.append({})
                continue
            mid, kernel = layer.cin * (6 if g6 else 3), 5 if g5 else 3
            layers.append(FoundLayer(layer.cin, layer.cout, mid, kernel, layer.stride, layer.residual))
            states.append(layer.subnet_state_dict(mid, kernel))
        return assemble(job, layers, states)

    def inherit(self, job, largest) -> None:
        return None  # the superkernel's choices already share the largest's weights

    def weight_parameters(self, model):
        return model.net.parameters()

    def arch_parameters(self, model):
        return [model.thresholds]

    def _probs(self, job, soft: torch.Tensor) -> torch.Tensor:
        """(n, positions) probability of each choice under independent relaxed decisions."""
        rows = []
        width = job.costs.mask.shape[1]
        for i, s in enumerate(job.specs):
            g5, g6, g3 = soft[i]
            ps = []
            for c in s.candidates:
                if c is None:
                    ps.append(1 - g3)
                else:
                    ps.append(g3 * (g5 if c.kernel == 5 else 1 - g5) * (g6 if c.expand == 6 else 1 - g6))
            p = torch.stack(ps)
            p = p / p.sum().clamp_min(1e-12)
            rows.append(F.pad(p, (0, width - len(ps))))
        return torch.stack(rows)

    def weight_step(self, job, x, y, gen) -> float:
        model = job.model
        hard, soft = model.gates(self.sharpness)
        job.w_opt.zero_grad(set_to_none=True)
        job.a_opt.zero_grad(set_to_none=True)
        ce = F.cross_entropy(model.net(x, hard), y)
        loss = ce
        if job.scratch.get("searching"):
            runtime_ms = job.costs.base_ms + (self._probs(job, soft) * job.cost_tensor()).sum()
            loss = ce + job.coefficient * torch.log(runtime_ms.clamp_min(1e-6))
        loss.backward()
        job.w_opt.step()
        if job.scratch.get("searching"):
            job.a_opt.step()
        return float(loss.detach())

    def arch_step(self, job, x, y, gen) -> float | None:
        return None  # thresholds move with the weights, in weight_step (the paper trains them jointly)

    def probabilities(self, job) -> np.ndarray:
        with torch.no_grad():
            return self._probs(job, job.model.gates(self.sharpness)[1]).numpy().astype(np.float64)

    def path(self, job, choice):
        g = []
        for s, c in zip(job.specs, choice):
            cand = s.candidates[int(c)]
            g.append((0.0, 0.0, 0.0) if cand is None else (float(cand.kernel == 5), float(cand.expand == 6), 1.0))
        return torch.tensor(g)

    def forward(self, job, x, path):
        return job.model.net(x, path)

    def report(self, job) -> dict:
        return {}
